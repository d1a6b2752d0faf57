"""The bridge's own event loop, on a thread of its own.

A Llama Stack server builds its providers in a temporary event loop (in a worker thread, closed right
after) and serves requests from another. hostel's channels, watchers and callback service are bound to
the loop they start in, so the bridge runs them on a loop that lives as long as the server, and every
call crosses over to it (and a provider's callbacks cross back to the loop serving the request).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from hostel import _telemetry

T = TypeVar("T")


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


async def iterate_on(loop: asyncio.AbstractEventLoop, stream: Any) -> AsyncIterator[Any]:
    """Iterate an async iterator that belongs to ``loop`` from another loop, one item per hop; closed on exit."""
    try:
        while True:
            try:
                item = await run_on(loop, stream.__anext__)
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None and not loop.is_closed():
            await run_on(loop, aclose)
