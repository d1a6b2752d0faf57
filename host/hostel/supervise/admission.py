"""Admission control: how many calls a provider runs at once, how many may wait, and how many the host holds.

Past the limits a call fails at once with ``ProviderBusyError`` (HTTP 503 with Retry-After) instead of
piling up: a flood of callers costs the host a counter each, not memory, and never another provider's calls.
A call that returns a stream holds its place until the stream ends.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

from hostel import _telemetry
from hostel.errors import CallTimeoutError, ProviderBusyError
from hostel_sdk._client import StreamWrapper


class HostGate:
    """Every call in the host, admitted or queued, across providers: at most ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls = 0


class Admission:
    """One provider's gate: ``concurrent`` calls run, ``queued`` more wait in order, the rest are refused."""

    def __init__(self, provider_id: str, *, concurrent: int, queued: int, host: HostGate) -> None:
        self._provider_id = provider_id
        self.concurrent = concurrent
        self.queued = queued
        self._host = host
        self.running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def load(self) -> int:
        """Calls running and waiting (what least-loaded routing compares)."""
        return self.running + len(self._waiting)

    def _busy(self, why: str) -> ProviderBusyError:
        return ProviderBusyError(
            f"provider {self._provider_id!r} is busy: {why}; try again shortly", provider_id=self._provider_id
        )

    async def enter(self, timeout: float) -> None:
        """Take a place, waiting in the queue up to ``timeout`` seconds; ``ProviderBusyError`` when full."""
        host = self._host
        if host.calls >= host.limit:
            raise self._busy(f"the host holds {host.calls} calls, its limit (hostel.max_calls)")
        if self.running < self.concurrent and not self._waiting:
            self.running += 1
            host.calls += 1
            return
        if len(self._waiting) >= self.queued:
            raise self._busy(
                f"{self.running} calls running and {len(self._waiting)} queued, its limits "
                "(limits.max_concurrent_calls, limits.max_queued_calls)"
            )
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self._waiting.append(turn)
        host.calls += 1
        queued_at = loop.time()
        try:
            await asyncio.wait_for(asyncio.shield(turn), timeout)
            _telemetry.annotate("hostel.queue.wait_s", loop.time() - queued_at)
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._release()  # the place was handed to us just as we gave up: pass it on
            else:
                turn.cancel()
                self._waiting.remove(turn)
            host.calls -= 1
            if isinstance(exc, TimeoutError):
                raise CallTimeoutError(
                    f"call on provider {self._provider_id!r} waited {timeout:g}s in its queue "
                    f"({self.running} calls running) and timed out",
                    provider_id=self._provider_id,
                ) from None
            raise

    def leave(self) -> None:
        """Give a place back (the call returned, failed, or its stream ended)."""
        self._host.calls -= 1
        self._release()

    def _release(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the place passes straight to the next in line
                return
        self.running -= 1


class InFlight:
    """The calls one worker is serving, open streams included, so that it can be drained before it stops."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A call begins."""
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        """A call returned, failed, or its stream ended."""
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        """Wait until no call is in flight, ``timeout`` seconds at most; whether none is."""
        try:
            await asyncio.wait_for(self._idle.wait(), max(timeout, 0))
        except TimeoutError:
            return self.count == 0
        return True


class AdmittedStream(StreamWrapper, AsyncIterator[Any]):
    """A stream that holds its call's place until it ends, is closed, or is dropped unclosed: ``release`` runs
    once, then."""

    def __init__(self, stream: Any, release: Callable[[], None]) -> None:
        self._stream = stream
        self._done = weakref.finalize(self, release)

    def __aiter__(self) -> AdmittedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._stream.__anext__()
        except BaseException:
            self._done()
            raise

    async def aclose(self) -> None:
        """Stop the stream (the provider's generator is cancelled) and give the place back."""
        try:
            await self._stream.aclose()
        finally:
            self._done()

    async def __aenter__(self) -> AdmittedStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
