"""Helpers shared by the benchmarks: timing, tables, JSON output."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

# Keep a Ray the benchmarks start on 127.0.0.1 (Ray 2.60 otherwise takes the machine's routable address even
# when told 127.0.0.1; docs/launchers.md). Ray reads it when imported, after this module.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def median_ms(samples: Sequence[float]) -> float:
    """Median of samples given in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


class Clock:
    """``with Clock() as c: ...; c.seconds``."""

    def __enter__(self) -> Clock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Print rows (dicts with the same keys) as an aligned table."""
    if not rows:
        return
    header = list(rows[0])
    cells = [[_fmt(r[h]) for h in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def free_port() -> int:
    """A TCP port nobody listens on (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, proc: subprocess.Popen[bytes], *, ok: int | None = None, verify: Any = True,
            poll_s: float = 0.05, timeout_s: float = 300) -> None:  # fmt: skip
    """Wait until ``url`` answers (with status ``ok``, if given) while ``proc`` runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server for {url} exited"
        try:
            status = httpx.get(url, timeout=1, verify=verify).status_code
        except httpx.HTTPError:
            status = None
        if status is not None and (ok is None or status == ok):
            return
        time.sleep(poll_s)
    raise TimeoutError(url)


class HostelRun:
    """``hostel run CONFIG`` on a free loopback port (``url``), waited for until ``/v1/health`` says 200;
    ``ready_s``: how long that took."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None, scheme: str = "http",
                 verify: Any = True, poll_s: float = 0.05) -> None:  # fmt: skip
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hostel", "run", str(config), "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_up(f"{self.url}/v1/health", self.proc, ok=200, verify=verify, poll_s=poll_s)
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.perf_counter() - started

    def admin_headers(self) -> dict[str, str]:
        """The admin token's header (``/v1/hostel/*``), from the file ``hostel run`` wrote under ``HOSTEL_HOME``."""
        from hostel.envs.store import default_home
        from hostel.gateway.admin import ADMIN_HEADER, admin_token_path

        home = Path(self.env["HOSTEL_HOME"]) if "HOSTEL_HOME" in self.env else default_home()
        return {ADMIN_HEADER: admin_token_path(home, self.port).read_text().strip()}

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit."""
        self.proc.terminate()
        self.proc.wait(timeout=120)


def write_json(path: Path | None, section: str, rows: Any) -> None:
    """Merge ``rows`` under ``section`` into the JSON results file."""
    if path is None:
        return
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = rows
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_cli(
    doc: str, section: str, title: str, bench: Callable[..., Awaitable[list[dict[str, Any]]]], **options: Any
) -> None:
    """The command line of one benchmark: ``--json`` plus one ``--name`` per keyword (typed by its default)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="merge results into this JSON file")
    for name, default in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, list):
            parser.add_argument(flag, nargs="+", default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    opts = parser.parse_args()
    rows = asyncio.run(bench(**{name: getattr(opts, name) for name in options}))
    print_table(title, rows)
    write_json(opts.json, section, rows)
