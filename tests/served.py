"""``hostel run`` as a user runs it, for tests: a real server process on a free loopback port, and HTTP to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_until


def free_port() -> int:
    """A TCP port nobody listens on (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """``hostel run CONFIG --port P`` with ``HOSTEL_HOME=home``, started and waited for (``/v1/health`` 200)."""

    def __init__(
        self,
        config: Path,
        home: Path,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        scheme: str = "http",
        verify: Any = True,
    ) -> None:
        self.home = home
        self.config = config
        self.port = port or free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        self.log = config.parent / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hostel", "run", str(config), "--port", str(self.port), *args],
            env={**os.environ, "HOSTEL_HOME": str(home), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        assert wait_until(self._up, timeout=180), self.log.read_text()

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        # The server answers as soon as it listens; it publishes its admin token (what ``get`` sends) just after,
        # then logs that it serves: wait for that line too, or a first admin call may go without the token.
        if "hostel serving" not in self.log.read_text(errors="replace"):
            return False
        try:
            return httpx.get(f"{self.url}/v1/health", timeout=2, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def admin_headers(self) -> dict[str, str]:
        """The admin token's header, as ``hostel ps``/``reload`` send it (from the file ``hostel run`` wrote)."""
        from hostel.gateway.admin import ADMIN_HEADER, admin_token_path

        path = admin_token_path(self.home, self.port)
        return {ADMIN_HEADER: path.read_text().strip()} if path.exists() else {}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET ``path``, as the user who started the server (with its admin token)."""
        headers = {**self.admin_headers(), **kwargs.pop("headers", {})}
        return httpx.get(f"{self.url}{path}", timeout=60, verify=self.verify, headers=headers, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """POST ``body`` (``{}`` by default) as JSON to ``path``, as the user who started the server."""
        headers = {**self.admin_headers(), **kwargs.pop("headers", {})}
        return httpx.post(
            f"{self.url}{path}", json={} if body is None else body, timeout=60, verify=self.verify, headers=headers,
            **kwargs,
        )  # fmt: skip

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any other request to ``path``."""
        return httpx.request(method, f"{self.url}{path}", timeout=60, verify=self.verify, **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``hostel ARGS --port P`` against this server."""
        return subprocess.run(
            [sys.executable, "-m", "hostel", *args, "--port", str(self.port)],
            env={**os.environ, "HOSTEL_HOME": str(self.home)},  # where its admin token is
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    def stop(self) -> int:
        """SIGTERM, and its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)
