"""The Ray actor that runs one provider worker on its node: ``python -m hostel_sdk.worker`` in the actor's
runtime_env, fed its start request on stdin, its handshake line handed back to the host.

The worker is the actor's child, so it dies with the actor (parent-death signal and stdin EOF), and the
actor dies with the host (Ray ends a driver's actors with it). Only the standard library and Ray here:
this module is imported on every node that runs a provider.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from typing import Any

_POLL_S = 0.2


class WorkerActor:
    """Starts, watches and signals one worker process."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._tasks: list[asyncio.Task[None]] = []
        self._kill_reason: str | None = None

    def node(self) -> str:
        """This node's IP address: the worker listens there. Answering also means the runtime_env is ready."""
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]

    async def start(self, payload_line: bytes, memory_mb: int | None) -> str:
        """Spawn the worker, send its start request, and return its first stdout line (handshake or failure)."""
        self._proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hostel_sdk.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=1024 * 1024,
        )  # fmt: skip
        assert proc.stdin and proc.stdout and proc.stderr
        self._tasks.append(asyncio.create_task(self._relay(proc.stderr, keep=True)))
        proc.stdin.write(payload_line)
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        self._tasks.append(asyncio.create_task(self._relay(proc.stdout, keep=False)))
        if memory_mb:
            self._tasks.append(asyncio.create_task(self._watch_memory(memory_mb)))
        return line.decode(errors="replace")

    async def _relay(self, stream: asyncio.StreamReader, *, keep: bool) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            if keep:
                self._stderr.append(line)
            print(line, file=sys.stderr, flush=True)  # Ray streams actor output to the host's console

    async def _watch_memory(self, limit_mb: int) -> None:
        """``limits.memory_mb`` on the worker's own node: kill it once its resident memory passes the limit."""
        proc = self._proc
        assert proc is not None
        page = os.sysconf("SC_PAGE_SIZE")
        while proc.returncode is None:
            try:
                with open(f"/proc/{proc.pid}/statm") as statm:
                    rss = int(statm.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                return
            if rss > limit_mb * 2**20:
                self._kill_reason = f"exceeded its memory limit of {limit_mb} MB (limits.memory_mb; RSS {rss >> 20} MB)"
                self.signal(signal.SIGKILL)
                return
            await asyncio.sleep(_POLL_S)

    async def wait(self) -> tuple[int, str, str | None]:
        """Wait for the worker to exit: its return code, its stderr tail, and why the actor killed it, if it did."""
        assert self._proc is not None, "worker not started"
        returncode = await self._proc.wait()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._tasks[0]), 1.0)  # let the stderr relay drain
        return returncode, "\n".join(self._stderr), self._kill_reason

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker's process group."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    def stderr_tail(self) -> str:
        """What the worker wrote to stderr lately."""
        return "\n".join(self._stderr)

    def __repr__(self) -> str:
        pid: Any = self._proc.pid if self._proc else None
        return f"WorkerActor(pid={pid})"
