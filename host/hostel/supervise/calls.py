"""How a call reaches a replica's worker: ``CallPath``.

Refused at once if the replica is down (failed, stopped), admitted within its limits (``Admission``), held
for a worker up to its deadline (a lazy one is woken, a restarting one waited for), forwarded, and counted in
flight until it (or the stream it returned) ends. A failure is logged once (``call_log``).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from hostel.config import HostelSettings
from hostel.errors import CallTimeoutError, ProviderUnavailableError
from hostel.supervise.admission import Admission, AdmittedStream, InFlight
from hostel.supervise.call_log import log_failed_call, next_call_id
from hostel.supervise.readiness import Readiness
from hostel.supervise.running import RunningWorker


class CallPath:
    """The calls of one replica of ``provider_id``; see the module's docstring."""

    def __init__(
        self,
        provider_id: str,
        settings: HostelSettings,
        admission: Admission,
        readiness: Readiness,
        *,
        current: Callable[[], RunningWorker | None],
        start: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        """``current``: the worker that serves now, if any; ``start``: starts a lazy replica (the supervisor's
        way: its dependencies first, within ``max_running``)."""
        self.provider_id = provider_id
        self.admission = admission
        self.last_used = time.monotonic()  # when a call last began or ended
        self._settings, self._readiness, self._current, self._start = settings, readiness, current, start
        self._waking: asyncio.Task[None] | None = None

    async def wake(self, timeout: float | None) -> None:
        """Start a lazy (``idle``) replica for a call, waiting ``timeout`` seconds at most (``None``: as long as
        its start takes); callers arriving meanwhile share the one start. ``ProviderStartError`` if it cannot."""
        if self._waking is None or self._waking.done():
            self._waking = asyncio.create_task(self._start())
            self._waking.add_done_callback(retrieve)
        try:
            await asyncio.wait_for(asyncio.shield(self._waking), None if timeout is None else max(timeout, 0))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this call itself was cancelled
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} stopped while it started", provider_id=self.provider_id
            ) from None
        except TimeoutError:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} was still starting when the call's {timeout:g}s deadline passed",
                provider_id=self.provider_id,
            ) from None

    def touch(self) -> None:
        """Count as used now (a new worker has not been idle)."""
        self.last_used = time.monotonic()

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Forward one call to the current worker, waiting for a start or restart up to the call's deadline.

        ``timeout`` is capped at ``call_timeout_s`` (its default): no caller, a provider calling its ``deps``
        included, can make a call outlive what the operator configured."""
        limit = self._settings.call_timeout_s
        timeout = min(timeout, limit) if timeout is not None and not math.isnan(timeout) else limit
        deadline = time.monotonic() + timeout
        call_id = next_call_id()
        try:
            self._readiness.refuse_if_down()
            await self.admission.enter(timeout)
        except BaseException as exc:
            log_failed_call(self.provider_id, method, call_id, exc)
            raise
        self.touch()
        try:
            result, in_flight, unbind = await self._forward(method, args, kwargs, deadline, provider_data)
        except BaseException as exc:
            self.admission.leave()
            log_failed_call(self.provider_id, method, call_id, exc)
            raise
        if hasattr(result, "__aiter__"):
            return AdmittedStream(result, functools.partial(self._release, in_flight, unbind))
        self._release(in_flight, unbind)
        return result

    def _release(self, in_flight: InFlight, unbind: Callable[[], None]) -> None:
        unbind()
        in_flight.leave()
        self.admission.leave()
        self.touch()

    async def _forward(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], deadline: float, provider_data: Any
    ) -> tuple[Any, InFlight, Callable[[], None]]:
        readiness = self._readiness
        if readiness.state == "idle":
            await self.wake(deadline - time.monotonic())
        if not readiness.ready:
            await readiness.wait(deadline)
        running = self._current()
        if running is None:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {readiness.state}", provider_id=self.provider_id
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallTimeoutError(
                f"call {method}() on provider {self.provider_id!r} timed out", provider_id=self.provider_id
            )
        result, unbind = await running.call(method, args, kwargs, remaining, provider_data)
        return result, running.in_flight, unbind


def retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (those who waited for it were told): a done callback."""
    if not task.cancelled():
        task.exception()
