"""A host killed with SIGKILL leaves its socket directory; the next host to start removes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from hostel import Host
from hostel._stale import sweep_socket_dirs
from tests.conftest import REPO, make_config

HOLD = """
import asyncio, sys
from hostel import Host

async def main():
    async with Host.from_config(sys.argv[1]) as host:
        print(host._socket_dir, flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_hosts_socket_directory_is_removed_by_the_next_host(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    killed = subprocess.Popen([sys.executable, "-c", HOLD, str(config)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert killed.stdout is not None
        left = Path(killed.stdout.readline().strip())
        assert left.name.startswith(f"hostel-{killed.pid}-") and (left / "host.sock").exists()
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    live = Path(tempfile.gettempdir()) / f"hostel-{os.getpid()}-{'0' * 12}"  # a running pid: never touched
    live.mkdir()
    try:
        assert left.exists()  # nobody cleaned up after the SIGKILL
        async with Host.from_config(config) as host:
            assert await host.provider("t").greet(name="x") == "hi, x"
        assert not left.exists() and live.exists()
        assert sweep_socket_dirs(live.parent) == []
    finally:
        live.rmdir()
