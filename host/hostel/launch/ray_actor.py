"""The Ray actor that runs one provider worker on its node: ``python -m hostel_sdk.worker`` in the actor's
runtime_env, fed its start request on stdin, its handshake line handed back to the host.

The worker is the actor's child, so it dies with the actor (parent-death signal and stdin EOF), and the
actor dies with the host (Ray ends a driver's actors with it). Besides Ray, only the standard library and
hostel's standard-library modules (``_child``, the handshake constants): this module is imported on every
node that runs a provider.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from hostel.launch.child import Child, FirstLine, LineRelay, collect_stacks
from hostel_sdk._handshake import STACKS_SIGNAL

_POLL_S = 0.2
_DRAIN_S = 0.5


class WorkerActor:
    """Starts, watches and signals one worker process."""

    def __init__(self) -> None:
        self._child: Child | None = None
        self._stderr = LineRelay(self._print, what="stderr")
        self._stdout = LineRelay(self._print, tail_lines=1, what="stdout")
        self._tasks: list[asyncio.Task[None]] = []
        self._kill_reason: str | None = None

    def node(self) -> str:
        """This node's IP address: the worker listens there. Answering also means the runtime_env is ready."""
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]

    def node_id(self) -> str:
        """The Ray id of the node the actor (and its worker) runs on: where placement put it."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    async def start(self, payload_line: bytes, memory_mb: int | None) -> str:
        """Spawn the worker, send its start request, and return its first stdout line (handshake or failure)."""
        stdout = FirstLine(self._stdout.feed)
        self._child = child = Child(stdout.feed, self._stderr.feed)
        await child.spawn([sys.executable, "-m", "hostel_sdk.worker"])
        assert child.exited is not None
        child.write(payload_line)
        either: set[asyncio.Future[Any]] = {stdout.line, child.exited}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if memory_mb:
            self._tasks.append(asyncio.create_task(self._watch_memory(memory_mb)))
        return stdout.line.result().decode(errors="replace") if stdout.line.done() else ""

    @staticmethod
    def _print(line: str) -> None:
        print(line, file=sys.stderr, flush=True)  # Ray streams actor output to the host's console

    async def _watch_memory(self, limit_mb: int) -> None:
        """``limits.memory_mb`` on the worker's own node: kill it once its resident memory passes the limit."""
        child = self._child
        assert child is not None
        page = os.sysconf("SC_PAGE_SIZE")
        while child.returncode is None:
            try:
                with open(f"/proc/{child.pid}/statm") as statm:
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
        child = self._child
        assert child is not None and child.exited is not None, "worker not started"
        returncode = await child.exited
        await child.output_closed(_DRAIN_S)  # let its last words arrive
        self._stderr.close()
        child.close()
        for task in self._tasks:
            task.cancel()
        return returncode, self._stderr.tail_text(200), self._kill_reason

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker's process group."""
        if self._child is not None:
            self._child.signal_group(sig)

    async def dump_stacks(self) -> str:
        """Ask the worker for its threads' stacks (on its stderr) and return them."""
        child = self._child
        if child is None or child.returncode is not None:
            return ""
        mark = self._stderr.lines
        child.signal_process(STACKS_SIGNAL)
        return await collect_stacks(self._stderr, mark)

    def stderr_tail(self) -> str:
        """What the worker wrote to stderr lately."""
        return self._stderr.tail_text(200)

    def __repr__(self) -> str:
        pid: Any = self._child.pid if self._child else None
        return f"WorkerActor(pid={pid})"
