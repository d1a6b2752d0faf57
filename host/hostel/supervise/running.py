"""A running worker and what belongs to it: its channel, its calls in flight, its callback token.

However a worker ends, the same things must happen: its token revoked (a dead worker's token is worth
nothing), its channel closed, its process stopped or killed, its handle closed. ``RunningWorker.retire``
(drain, ask, force), ``RunningWorker.release`` (it died, or is being stopped) and ``discard`` (it never
served) are the three ways, and each does all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hostel.config.plan import ProviderPlan
from hostel.errors import ProviderUnavailableError
from hostel.launch.base import Explain, WorkerHandle, WorkerLauncher
from hostel.supervise.admission import InFlight
from hostel.supervise.context import SupervisorContext
from hostel.transport.callbacks import CallbackServer
from hostel.transport.channel import Channel

logger = logging.getLogger(__name__)

# Stopping past the grace: how long SIGTERM is given before SIGKILL. With the launchers' own bound on
# reaping a killed worker, this is the fixed allowance a stop may take beyond its grace.
TERM_WAIT_S = 1.0


class RunningWorker:
    """A started worker of ``provider_id`` with its channel, its count of calls in flight and its token."""

    def __init__(
        self, provider_id: str, worker: WorkerHandle, channel: Channel, callbacks: CallbackServer | None
    ) -> None:
        self.provider_id = provider_id
        self.worker = worker
        self.channel = channel
        self.in_flight = InFlight()
        self._callbacks = callbacks

    @property
    def pid(self) -> int | None:
        """The worker's pid."""
        return self.worker.pid

    @property
    def alive(self) -> bool:
        """Whether the worker has not exited (as far as the host knows)."""
        return self.worker.exit_info is None

    def busy(self) -> bool:
        """Whether it has calls (or open streams) in flight."""
        return self.in_flight.count > 0

    def bind_call(self, provider_data: Any) -> tuple[Any, Callable[[], None]]:
        """The provider data to send with one call (its ``deps`` calls speak for this call's user, and for no one
        else), and what to run when the call ends."""
        if self._callbacks is None or not self.worker.token:
            return provider_data, _nothing
        return self._callbacks.bind_call(self.worker.token, provider_data)

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], timeout: float, provider_data: Any
    ) -> tuple[Any, Callable[[], None]]:
        """Forward one call, counted in flight until the returned function is run (when a stream ends, for
        one)."""
        self.in_flight.enter()
        provider_data, unbind = self.bind_call(provider_data)
        try:
            result = await self.channel.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)
        except BaseException:
            unbind()
            self.in_flight.leave()
            raise
        return result, unbind

    def revoke(self) -> None:
        """Revoke its callback token."""
        _revoke(self.worker, self._callbacks)

    async def ask_to_stop(self, deadline: float) -> None:
        """Ask the worker to stop (finishing its calls and its provider's ``shutdown()``); wait until
        ``deadline`` (monotonic) at most."""
        remaining = deadline - time.monotonic()
        if not self.alive or remaining <= 0:
            return
        await self.channel.request_shutdown(remaining, timeout=min(1.0, remaining))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.worker.wait(), max(deadline - time.monotonic(), 0))

    async def retire(self, drain_s: float, grace_s: float) -> None:
        """It takes no new calls: let it finish its calls and streams (``drain_s`` at most), ask it to stop
        (``grace_s``), then SIGTERM and SIGKILL; release everything."""
        try:
            if not await self.in_flight.drained(drain_s):
                logger.warning(
                    "provider %s [pid %s]: %d calls still in flight after %gs (drain_grace_s); stopping it anyway",
                    self.provider_id, self.pid, self.in_flight.count, drain_s,
                )  # fmt: skip
            if grace_s > 0:
                await self.ask_to_stop(time.monotonic() + grace_s)
        finally:
            await self.release(terminate=True)
            logger.info("provider %s: stopped [pid %s]", self.provider_id, self.pid)

    async def release(self, *, terminate: bool = False, channel_grace: float = 0.0) -> asyncio.Task[None] | None:
        """Let go of it: SIGTERM then SIGKILL if ``terminate`` and it still runs, token revoked, channel and
        handle closed. With ``channel_grace`` the channel closes in the background after that long (calls in
        flight must see their transport fail, and so report a crash, not a channel closed under them); the
        task is returned."""
        if terminate and self.alive:
            await self.worker.terminate(TERM_WAIT_S)
        self.revoke()
        closing = None
        if channel_grace:
            closing = asyncio.create_task(self.channel.close(grace=channel_grace))
        else:
            await self.channel.close()
        await self.worker.close()
        return closing

    async def discard(self) -> None:
        """Kill it at once: it must not serve (a failed check, a replacement the host stopped meanwhile)."""
        await discard(self.worker, self._callbacks, self.channel)

    def kill(self) -> None:
        """SIGKILL it now."""
        self.worker.signal(signal.SIGKILL)


async def start_worker(
    launcher: WorkerLauncher,
    worker: WorkerHandle,
    plan: ProviderPlan,
    context: SupervisorContext,
    *,
    explain: Explain,
    cancelled: Callable[[], bool],
) -> RunningWorker:
    """Start ``worker`` for ``plan`` with a callback token of its own, connect to it and prime it; on failure
    (or if ``cancelled()`` once it is up: the host began to stop) nothing is left running."""
    callbacks = context.callbacks
    token = ""
    if callbacks is not None:  # a token per worker: a dead worker's token is worth nothing
        token = callbacks.grant(
            plan.provider_id, plan.worker.dependency_apis, max_in_flight=plan.policy.max_concurrent_calls
        )
    try:
        handshake = await worker.start(context.settings.start_timeout_s, token=token)
        channel = launcher.connect(worker, handshake, provider_id=plan.provider_id, explain=explain)
        if context.prime is not None:
            await context.prime(plan, channel)
        if cancelled():
            await channel.close()
            raise ProviderUnavailableError(
                f"provider {plan.provider_id!r}: the host stopped while it started", provider_id=plan.provider_id
            )
    except BaseException:
        await discard(worker, callbacks)
        raise
    return RunningWorker(plan.provider_id, worker, channel, callbacks)


async def discard(worker: WorkerHandle, callbacks: CallbackServer | None, channel: Channel | None = None) -> None:
    """Get rid of a worker that never served, or must not (a failed start, a standby): its callback token
    revoked, its channel closed, the process killed."""
    _revoke(worker, callbacks)
    if channel is not None:
        await channel.close()
    with contextlib.suppress(Exception):
        await worker.kill()
        await worker.close()


def _revoke(worker: WorkerHandle, callbacks: CallbackServer | None) -> None:
    if callbacks is not None and worker.token:
        callbacks.revoke(worker.token)


def _nothing() -> None:
    pass
