"""One fake worker with named fault scenarios, for supervisor and protocol tests.

Run as ``python tests/fake_worker.py SCENARIO`` in place of ``python -m hostel_sdk.worker``. Scenarios
that misbehave after the handshake run the real worker runtime around the ``FakeProvider`` below.

- ``exit-before-handshake``  reads its start request, says so on stderr, exits 3
- ``bad-handshake``          prints a line that is not a handshake, then waits
- ``wrong-protocol-version`` prints a well-formed handshake of protocol 99
- ``hang-before-ready``      never prints anything
- ``ok``                     a well-behaved worker serving FakeProvider
- ``ignore-sigterm``         serves, but ignores SIGTERM and the Shutdown RPC
- ``flood-stderr``           serves, after writing 20,000 lines to stderr
- ``no-session``             serves without Worker.Session (as a worker in another language may)
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any


class FakeProvider:
    async def ping(self) -> str:
        return "pong"

    async def pid(self) -> int:
        return os.getpid()

    async def crash(self, code: int = 3) -> None:
        print("fake worker crashing on purpose", file=sys.stderr, flush=True)
        os._exit(code)

    async def die_by_signal(self, sig: int = signal.SIGKILL) -> None:
        os.kill(os.getpid(), sig)

    async def hang(self) -> None:
        while True:  # a C call holding the GIL: the whole process hangs, its watchdog thread too
            ctypes.PyDLL(None).sleep(3600)

    async def stream_then_crash(self, before: int) -> AsyncIterator[int]:
        for i in range(before):
            yield i
        await asyncio.sleep(0.2)
        os._exit(4)

    async def sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    async def fork_holding_pipes(self) -> int:
        """A child that keeps this worker's stdout and stderr open for a minute; its pid."""
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        return pid

    async def huge_stderr_line(self, megabytes: int) -> str:
        sys.stderr.write("x" * (megabytes << 20) + "\n")
        sys.stderr.flush()
        print("after the huge line", file=sys.stderr, flush=True)
        return "written"


async def get_provider_impl(config: Any, deps: Any) -> FakeProvider:
    return FakeProvider()


def _payload() -> dict[str, Any]:
    line = sys.stdin.buffer.readline()
    return json.loads(line) if line.strip() else {}


def main(scenario: str) -> int:
    if scenario == "exit-before-handshake":
        _payload()
        print("fake worker: exiting before the handshake", file=sys.stderr, flush=True)
        return 3
    if scenario == "bad-handshake":
        _payload()
        print("hello, I am not a handshake", flush=True)
        time.sleep(3600)
        return 0
    if scenario == "wrong-protocol-version":
        _payload()
        print(f"hostel|99|unix|/nowhere.sock|{os.getpid()}|9.9.9", flush=True)
        time.sleep(3600)
        return 0
    if scenario == "hang-before-ready":
        _payload()
        time.sleep(3600)
        return 0

    import dataclasses

    from hostel_sdk import worker
    from hostel_sdk._start import StartRequest

    handshake_fd = os.dup(1)
    os.dup2(2, 1)
    line = sys.stdin.buffer.readline()
    request = dataclasses.replace(
        StartRequest.from_json(line), module="__main__", config_class=None, kind="inline", provider_data_validator=None
    )
    options = worker.ServeOptions()
    if scenario == "flood-stderr":
        for i in range(20_000):
            print(f"flood line {i}", file=sys.stderr)
        sys.stderr.flush()
    if scenario == "ignore-sigterm":  # deaf to SIGTERM and to the Shutdown RPC: only SIGKILL ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        options = worker.ServeOptions(stop_signals=(signal.SIGINT,), honour_shutdown_rpc=False)
    if scenario == "no-session":  # serves Worker without its optional Session (calls to it: UNIMPLEMENTED)
        options = worker.ServeOptions(sessions=False)
    worker._die_with_parent(request.host_pid)
    return asyncio.run(worker.serve(request, handshake_fd, options))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
