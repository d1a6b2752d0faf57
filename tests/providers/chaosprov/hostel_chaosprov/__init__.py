"""A provider that misbehaves on request, as a buggy or hostile one would: each method is one named fault.

hostel's chaos suite (tests/test_chaos.py) calls these through ``hostel run`` while an innocent provider
is called steadily beside it; docs/supervision.md has the table of what a user sees for each.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel


class Config(BaseModel):
    pass


def _hold_gil(seconds: float) -> None:
    """A C call that never releases the GIL, as some extensions' do: nothing else in the process runs, the
    worker's watchdog thread included (a signal interrupts ``sleep``; it resumes)."""
    libc_holding_gil = ctypes.PyDLL(None)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        libc_holding_gil.sleep(max(int(left), 1))


class ChaosProvider:
    def __init__(self, deps: dict[Any, Any]) -> None:
        self.deps = deps
        self._leak: list[bytearray] = []
        self._stubborn = False

    async def ping(self) -> str:
        return "pong"

    async def pid(self) -> int:
        return os.getpid()

    async def stderr_line(self, megabytes: int) -> str:
        """One line of ``megabytes`` MB on stderr (a base64 image logged at DEBUG)."""
        sys.stderr.write("A" * (megabytes << 20) + "\n")
        sys.stderr.flush()
        return "written"

    async def garbage(self, kilobytes: int) -> str:
        """Binary garbage, terminal escapes included, on stdout and stderr."""
        junk = bytes(range(256)) * (kilobytes * 4) + b"\x1b[2J\x1b]0;pwned\x07\n"
        os.write(1, junk)
        os.write(2, junk)
        return "written"

    async def flood(self, seconds: float) -> str:
        """Write to stderr as fast as possible for ``seconds``, from a thread (the provider keeps serving)."""

        def write() -> None:
            line = b"flood " + b"f" * 100 + b"\n"
            chunk = line * 1000
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                os.write(2, chunk)

        threading.Thread(target=write, daemon=True).start()
        return "flooding"

    async def block(self, seconds: float) -> str:
        """Block the event loop (a synchronous call inside an async method): busy, not hung."""
        time.sleep(seconds)
        return "unblocked"

    async def hold_gil(self, seconds: float) -> str:
        """Hang the whole process: a C call holding the GIL, so that not even the watchdog thread answers."""
        _hold_gil(seconds)
        return "released"

    async def be_stubborn(self) -> str:
        """Ignore SIGTERM from now on, and hang in shutdown()."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self._stubborn = True
        return "stubborn"

    async def shutdown(self) -> None:
        if self._stubborn:
            time.sleep(3600)

    async def fork_and_die(self) -> int:
        """Fork a child that keeps this worker's pipes open, then die by SIGKILL; the child's pid never returns."""
        pid = os.fork()
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        os.kill(os.getpid(), signal.SIGKILL)
        return pid

    async def leak(self, megabytes_per_s: int) -> None:
        """Allocate and touch memory until killed."""
        while True:
            block = bytearray(megabytes_per_s << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            self._leak.append(block)
            await asyncio.sleep(0.1)

    async def exit_from_thread(self, code: int) -> str:
        threading.Thread(target=os._exit, args=(code,)).start()
        await asyncio.sleep(30)
        return "still here"

    async def segfault(self) -> None:
        ctypes.string_at(0)

    async def close_server(self) -> str:
        """Find the worker's own gRPC server and stop it, leaving the process alive."""
        import grpc

        for obj in gc.get_objects():
            if isinstance(obj, grpc.aio.Server):
                await obj.stop(0)
        return "closed"

    async def big_result(self, megabytes: int) -> str:
        return "r" * (megabytes << 20)

    async def endless(self, size: int) -> AsyncIterator[str]:
        item = "e" * size
        while True:
            yield item

    async def hammer(self, seconds: float, concurrency: int) -> dict[str, int]:
        """Call the inference dependency in a tight loop, ``concurrency`` calls at a time."""
        inference = next(iter(self.deps.values()))
        outcome = {"ok": 0, "failed": 0}
        end = time.monotonic() + seconds

        async def one() -> None:
            while time.monotonic() < end:
                try:
                    await inference.greet(name="hammer")
                    outcome["ok"] += 1
                except Exception:  # noqa: BLE001 - counted: the caller wants to know how many were refused
                    outcome["failed"] += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
        return outcome

    async def poke_socket(self, path: str, method: str = "Shutdown") -> str:
        """Call another worker's gRPC socket directly (no token of its own to give): the status it got."""
        import grpc

        async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
            call = channel.unary_unary(f"/hostel.v1.Worker/{method}", lambda b: b, lambda b: b)
            try:
                await call(b"", timeout=5)
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
        return "OK"

    async def poke_host(self, path: str, token: str, junk_bytes: int) -> str:
        """Call the host's callback service with a made-up token and a body that is no protobuf at all."""
        import grpc

        async with grpc.aio.insecure_channel(f"unix://{path}") as channel:
            call = channel.unary_stream("/hostel.v1.Host/Call", lambda b: b, lambda b: b)
            try:
                async for _ in call(b"\xff" * junk_bytes, metadata=(("hostel-token", token),), timeout=10):
                    return "answered"
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
        return "OK"

    async def environment(self) -> dict[str, str]:
        return dict(os.environ)

    async def rlimits(self) -> dict[str, list[int]]:
        import resource

        names = {
            "open_files": resource.RLIMIT_NOFILE, "processes": resource.RLIMIT_NPROC, "cpu": resource.RLIMIT_CPU,
            "core": resource.RLIMIT_CORE,
        }  # fmt: skip
        return {name: list(resource.getrlimit(which)) for name, which in names.items()}

    async def read_file(self, path: str) -> str:
        """The file's first 200 characters, or what stopped us."""
        try:
            with open(path) as f:
                return "read: " + f.read(200)
        except OSError as exc:
            return f"denied: {exc.strerror}"

    async def write_file(self, path: str, text: str) -> str:
        try:
            with open(path, "w") as f:
                f.write(text)
        except OSError as exc:
            return f"denied: {exc.strerror}"
        return "written"

    async def list_dir(self, path: str) -> str:
        try:
            return "listed: " + ",".join(sorted(os.listdir(path)))
        except OSError as exc:
            return f"denied: {exc.strerror}"

    async def send_signal(self, pid: int, sig: int) -> str:
        try:
            os.kill(pid, sig)
        except OSError as exc:
            return f"denied: {exc.strerror}"
        return "sent"

    async def connect(self, host: str, port: int) -> str:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except OSError as exc:
            return f"denied: {exc.strerror}" if exc.errno in (1, 13) else f"failed: {exc.strerror}"
        writer.close()
        return "connected"

    async def connect_unix(self, path: str) -> str:
        """Connect to a named Unix socket (the container engine's, an ssh agent's, D-Bus ...)."""
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 5)
        except OSError as exc:
            return f"failed: {exc.strerror}"
        writer.close()
        return "connected"

    async def cwd(self) -> str:
        """Where it runs (relative paths in its config mean this)."""
        return os.getcwd()

    async def raw_provider_data(self) -> str:
        """The provider data this call came with, as the worker holds it (hostel's keys included)."""
        from hostel_sdk import _context

        return bytes(_context.current_request().raw_provider_data).decode()

    async def dependency_caller(self, forged_user: Any = None, raw: str | None = None) -> Any:
        """Ask the inference dependency who is calling. ``forged_user``: claim to be that user, and ``raw``: send
        that provider data instead (an earlier call's), by rewriting what the worker echoes, as a hostile provider
        would."""
        import dataclasses
        import json

        from hostel_sdk import _context

        request = _context.current_request()
        data = raw.encode() if raw is not None else bytes(request.raw_provider_data)
        if forged_user is not None:
            data = json.dumps({**(json.loads(data) if data else {}), "__authenticated_user": forged_user}).encode()
        token = _context._request.set(dataclasses.replace(request, raw_provider_data=data))
        try:
            inference = next(iter(self.deps.values()))
            return await inference.caller()
        finally:
            _context._request.reset(token)

    async def neighbour_shutdown(self) -> str:
        """Call the inference dependency's lifecycle method, as if it were ours to call."""
        inference = next(iter(self.deps.values()))
        await inference.shutdown()
        return "neighbour shut down"


async def get_provider_impl(config: Config, deps: dict[Any, Any]) -> ChaosProvider:
    return ChaosProvider(deps)
