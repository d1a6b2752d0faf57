"""Servers for the bridge's tests: the example's venv (a Llama Stack or OGX server with hostel beside it) and a
server run from it, up until the test is done, its workers gone after."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, REPO, python_path, stop_server, wait_until, worker_pids
from tests.served import free_port

EXAMPLE = EXAMPLES / "llama_stack_bridge"
PY312 = python_path("3.12")
needs_python312 = pytest.mark.skipif(not PY312, reason="Llama Stack 0.7 and OGX 1.x need Python 3.12+, not found")


def example_venv(tmp_path_factory: pytest.TempPathFactory, requirements: str) -> Path:
    """Exactly the example README's set-up: the server (and a client) in one venv, hostel beside them."""
    import uv

    venv = tmp_path_factory.mktemp("server-venv")
    subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", str(PY312), str(venv)], check=True)
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-r", str(EXAMPLE / requirements), str(REPO)],
        check=True,
    )  # fmt: skip
    return venv


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    home: Path
    log: Path


@contextlib.contextmanager
def running(
    command: list[str], tmp: Path, extra_env: dict[str, str] | None = None, config: str = "config.yaml"
) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "HOSTEL_HOME": str(tmp / "home"),
        "SQLITE_STORE_DIR": str(tmp / "store"),
        "BRIDGEPROV_DIR": str(REPO / "tests" / "providers" / "bridgeprov"),
        **(extra_env or {}),
    }
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, config, "--port", str(port)],
            cwd=EXAMPLE, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    server = Server(proc, f"http://127.0.0.1:{port}", tmp / "home", log)

    def up() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")[-5000:]
        try:
            return httpx.get(f"{server.url}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=600, interval=0.5)
        yield server
    finally:
        stop_server(proc, timeout=30)
        for pid in worker_pids(str(server.home)):  # only if a test failed before checking the stop
            os.kill(pid, signal.SIGKILL)


def chat(server: Server, model: str, text: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


def run_python(
    venv: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``venv``'s Python run with ``args`` (a script of the example's, or ``-c`` code), which must succeed: its output,
    as text. ``env`` is added to this process's environment."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), *args],
        capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done
