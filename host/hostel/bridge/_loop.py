"""Where the bridge runs hostel: the server's own loop, or a loop on a thread of its own.

OGX 1.x builds its providers in its ASGI lifespan, on the loop it then serves requests from: the bridge runs
hostel right there, and a call is an ordinary await. A Llama Stack server builds them in a temporary event loop
(in a worker thread, closed right after) and serves requests from another; hostel's channels, watchers and
callback service are bound to the loop they start in, so there the bridge runs them on a loop that lives as long
as the server, and every call crosses over to it (and a provider's callbacks cross back to the loop serving the
request). Both have ``loop``, ``run`` and ``close``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from hostel import _telemetry
from hostel.errors import HostelError

T = TypeVar("T")


def serving_loop_here() -> bool:
    """Whether the running loop is the one the server will serve requests from: we are inside uvicorn's lifespan
    (its startup task), as OGX 1.x builds its providers."""
    task = asyncio.current_task()
    code = getattr(task.get_coro() if task is not None else None, "cr_code", None)
    return (
        code is not None
        and getattr(code, "co_qualname", code.co_name) == "LifespanOn.main"
        and "uvicorn" in code.co_filename
    )


class ServingLoop:
    """The server's own loop, where it serves requests: ``run`` is an ordinary await there."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Await ``make()`` on the server's loop (from another loop, crossing over)."""
        return await run_on(self.loop, make)

    def close(self) -> None:
        """Nothing to stop: the loop is the server's."""


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on this loop and await its result from the caller's loop (cancellation crosses too)."""
        return await run_on(self.loop, make)

    def close(self) -> None:
        """Stop the loop and wait for its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


async def run_on(loop: asyncio.AbstractEventLoop, make: Callable[[], Awaitable[T]]) -> T:
    """Await ``make()`` on ``loop`` from another loop; if it is the running loop, just await it. The caller's
    trace context crosses too, so the server's span is the parent of hostel's."""
    if loop is asyncio.get_running_loop():
        return await make()
    carrier = _telemetry.inject()

    async def wrapped() -> T:
        with _telemetry.extracted(carrier):
            return await make()

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wrapped(), loop))


# Items carried across loops in one hop at most (those already there; one hop costs more than many items).
_BATCH = 256


class _Batches:
    """An async iterator read on its own loop a batch at a time: at least one item, then every item that is
    already there (one that would make the reader wait stays pending for the next batch)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._pending: asyncio.Future[Any] | None = None

    async def next(self) -> list[Any]:
        """The next items; an empty list at the end. An error after some items comes with the next batch."""
        take = getattr(self._stream, "take_received", None)
        if take is not None and self._pending is None:  # hostel's own streams: what is received, in one go
            try:
                first = await self._stream.__anext__()
            except StopAsyncIteration:
                return []
            return [first, *take(_BATCH - 1)]
        items: list[Any] = []
        while len(items) < _BATCH:
            if self._pending is None:
                self._pending = asyncio.ensure_future(self._stream.__anext__())
            if items:
                await asyncio.sleep(0)  # one turn of the loop: an item already received is handed over by then
                if not self._pending.done() or self._pending.exception() is not None:
                    break
            pending, self._pending = self._pending, None
            try:
                items.append(await pending)
            except StopAsyncIteration:
                break
        return items

    async def aclose(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def iterate_on(
    loop: asyncio.AbstractEventLoop,
    stream: Any,
    translate: Callable[[HostelError], Exception] | None = None,
    make: Callable[[Any], Any] | None = None,
) -> AsyncIterator[Any]:
    """Iterate an async iterator that belongs to ``loop`` from another loop, a batch of ready items per hop;
    closed on exit. ``translate``: what to raise instead of a ``HostelError`` the stream raises; ``make``: what to
    yield for each item, made as it is yielded (a batch of made items alive at once costs the garbage collector
    more than making them)."""
    batches = _Batches(stream)
    try:
        while items := await run_on(loop, batches.next):
            if make is None:
                for item in items:
                    yield item
            else:
                for item in items:
                    yield make(item)
    except HostelError as exc:
        if translate is None:
            raise
        raise translate(exc) from None
    finally:
        if not loop.is_closed():
            await run_on(loop, batches.aclose)


# Where a bridge runs its host (``ServingLoop`` or ``LoopThread``).
HostLoop = ServingLoop | LoopThread
