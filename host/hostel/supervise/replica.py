"""One line of workers of a provider under supervision: the policy (docs/supervision.md, docs/lifecycle.md).

A ``Replica`` starts or refuses, restarts a crash with the ``RestartBudget``'s backoff, admits calls within
its limits, replaces its worker without dropping a call (start the new one, switch, drain the old), starts
lazily on the first call and sleeps when idle, and stops within a deadline. Its current worker is a
``RunningWorker`` (made by its ``Starter``); the watchdogs (liveness, memory, idle) are loops attached to it;
its calls take its ``CallPath``, and its ``Readiness`` tells them whether to go, wait or give up. It reaches
its worker only through the launcher seam (``WorkerHandle``, ``Channel``). A provider is a set of replicas
(``hostel.supervise.provider``); with ``replicas: 1``, a set of one.

Its ways to stop are ``stop(deadline)`` (idempotent: no new calls, drain, ask, force) and ``kill()``;
``close()`` says the host is stopping (nothing may start any more), ``sleep()`` makes it ``idle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from hostel._usage import process_usage
from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.errors import (
    HostelError,
    ProviderCrashedError,
    ProviderStartError,
    ProviderUnavailableError,
)
from hostel.launch import Launchers
from hostel.launch.base import WorkerHandle
from hostel.supervise.admission import Admission, HostGate
from hostel.supervise.calls import CallPath, retrieve
from hostel.supervise.context import SupervisorContext
from hostel.supervise.readiness import Readiness
from hostel.supervise.restarts import RestartBudget
from hostel.supervise.running import RunningWorker
from hostel.supervise.starter import Starter
from hostel.supervise.status import ProviderStatus, State
from hostel.supervise.watchdogs import probe_liveness, watch_idle, watch_memory
from hostel.transport.channel import Channel

logger = logging.getLogger(__name__)

# How long a transport failure may wait for the worker's exit to be noticed before it is reported as is.
_CRASH_GRACE_S = 2.0

Wake = Callable[["Replica"], Coroutine[Any, Any, None]]


class Replica:
    """Supervises one line of workers of a provider: its current worker, its restarts, its calls."""

    def __init__(
        self,
        plan: ProviderPlan,
        context: SupervisorContext,
        launchers: Launchers,
        gate: HostGate,
        wake: Wake,
    ) -> None:
        """``gate``: the host-wide count of calls this replica's calls count towards. ``wake``: how a lazy
        provider is started for its first call (the supervisor's starts its dependencies and makes room under
        ``max_running`` first)."""
        self.plan = plan
        self.admission = Admission(
            plan.provider_id,
            concurrent=plan.policy.max_concurrent_calls,
            queued=plan.policy.max_queued_calls,
            host=gate,
        )
        self.settings = context.settings
        self.readiness = Readiness(plan.provider_id)
        self.calls = CallPath(
            plan.provider_id, context.settings, self.admission, self.readiness, current=lambda: self.current,
            start=functools.partial(wake, self),
        )  # fmt: skip
        self.env: Env | None = None
        self.current: RunningWorker | None = None
        self.restarts = 0
        self._lock = asyncio.Lock()  # one lifecycle change at a time: start, replace, stop, sleep
        self._stopping = False
        self._budget = RestartBudget(plan.policy.restart)
        self._tasks: set[asyncio.Task[None]] = set()  # the current worker's watchers, and a restart loop
        self._background: set[asyncio.Task[None]] = set()  # retiring old workers, idle stops
        self._starter = Starter(plan.provider_id, launchers, context, self._explain)
        self.readiness.waiting_for = self._starter.waiting_for
        self._retiring: set[RunningWorker] = set()  # old workers finishing their calls after a replacement
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def provider_id(self) -> str:
        """The provider's id."""
        return self.plan.provider_id

    @property
    def worker(self) -> WorkerHandle | None:
        """The worker that serves (or is about to), if any."""
        return self.current.worker if self.current is not None else None

    @property
    def channel(self) -> Channel | None:
        """The channel to the worker that serves, if any."""
        return self.current.channel if self.current is not None else None

    @property
    def last_used(self) -> float:
        """When a call last began or ended (monotonic)."""
        return self.calls.last_used

    @property
    def state(self) -> State:
        """Its state (``Readiness`` holds it)."""
        return self.readiness.state

    @property
    def stopping(self) -> bool:
        """Whether the replica is stopping (nothing restarts, no call is admitted)."""
        return self._stopping

    def status(self, *, usage: bool = False) -> ProviderStatus:
        """A snapshot of this replica's state; with ``usage``, the current worker's memory and CPU time."""
        live = self.worker if self.worker is not None and self.worker.exit_info is None else None
        figures = process_usage(live.pid) if usage and live is not None and live.rss_bytes() is not None else None
        return ProviderStatus(
            provider_id=self.provider_id,
            api=self.plan.api,
            provider_type=self.plan.provider_type,
            state=self.state,
            pid=live.pid if live is not None else None,
            restarts=self.restarts,
            last_exit=self.readiness.last_exit,
            env_path=str(self.env.path) if self.env else None,
            new_pid=self._starter.next.pid if self._starter.next is not None else None,
            rss_bytes=figures.rss_bytes if figures else None,
            pss_bytes=figures.pss_bytes if figures else None,
            cpu_seconds=figures.cpu_seconds if figures else None,
            address=self.channel.target if live is not None and self.channel is not None else None,
        )

    def busy(self) -> bool:
        """Whether the current worker has calls (or open streams) in flight."""
        return self.current is not None and self.current.busy()

    def fail(self, why: str | None = None) -> None:
        """Mark a provider that could not be made ready (its env failed to build) ``failed``, saying ``why``."""
        self.readiness.set("failed")
        if why is not None:
            self.readiness.last_exit = why

    def expect(self) -> None:
        """A reload is bringing this new provider up: its calls wait for it (up to their deadlines)."""
        self.readiness.set("building")

    def open(self) -> None:
        """The host starts (again): workers may be started."""
        self._starter.open()

    def close(self) -> None:
        """The host stops: no worker may start from now on, starts under way are cancelled (what they started
        is stopped), nothing restarts and no call is admitted. ``stop`` then stops what runs."""
        self._starter.close()
        self._halt()

    def idle(self) -> None:
        """Mark a lazy provider ready to start on its first call (its env is built)."""
        self._stopping = False
        self.readiness.stopped_by = None
        self.readiness.set("idle")

    # -- starting ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start a worker and wait for its handshake; raise ``ProviderStartError``."""
        async with self._lock:
            await self._start()

    async def start_added(self) -> None:
        """Start a provider a reload added (``failed``, and the error raised, if it cannot start)."""
        async with self._lock:
            await self._start_fresh()

    async def _start(self) -> None:
        self._stopping = False
        self.readiness.stopped_by = None
        self.readiness.set("starting" if self.state != "restarting" else "restarting")
        self._adopt(await self._starter.launch(self.plan, self.env, use_standby=True))

    def _adopt(self, running: RunningWorker) -> None:
        """Make ``running`` the worker that serves, and watch it."""
        self.current = running
        worker = running.worker
        self.calls.touch()
        self.readiness.serve()
        self._spawn(self._watch(running))
        watched = functools.partial(self._watches, worker)
        self._spawn(probe_liveness(self.provider_id, worker, running.channel, self.settings, watched))
        if self.settings.standby_workers:
            self._spawn(self._starter.prepare_standby(self.plan, self.env, lambda: self._stopping))
        if self.plan.worker.memory_mb and worker.rss_bytes() is not None:  # else its launcher enforces the limit
            self._spawn(watch_memory(worker, self.plan.worker.memory_mb))
        if self.plan.policy.idle_stop_s is not None:
            self._spawn(watch_idle(self, worker, self.plan.policy.idle_stop_s))

    async def wake(self, timeout: float | None) -> None:
        """Start a lazy (``idle``) provider for a call (``CallPath.wake``)."""
        await self.calls.wake(timeout)

    async def start_if_idle(self) -> None:
        """Start the worker of an ``idle`` provider (a lazy one, or one stopped for being idle)."""
        async with self._lock:
            if self.state != "idle":
                return
            await self._start_fresh()
            logger.info("provider %s started on demand [pid %s]", self.provider_id, self.worker and self.worker.pid)

    # -- watching --------------------------------------------------------------------------------------

    def _watches(self, worker: WorkerHandle) -> bool:
        """Whether ``worker`` is still this provider's to watch (not gone, replaced, or being stopped)."""
        return worker.exit_info is None and worker is self.worker and not self._stopping

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def in_background(self, coro: Any) -> None:
        """Run ``coro`` as one of its background tasks (cancelled, and waited for, when it stops)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(retrieve)

    async def _explain(self, worker: WorkerHandle, error: HostelError) -> HostelError:
        """A transport failure on a worker that died is a crash, with its exit and stderr tail."""
        if not isinstance(error, ProviderUnavailableError) or self._stopping:
            return error
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(worker.wait(), _CRASH_GRACE_S)
        info = worker.exit_info
        if info is None:
            return error
        self._mark_down(worker)
        return ProviderCrashedError(
            provider_id=self.provider_id,
            exit_code=info.exit_code,
            signal=info.signal,
            stderr_tail=worker.stderr_tail(),
            pid=worker.pid,
            reason=worker.kill_reason or "",
        )

    async def _watch(self, running: RunningWorker) -> None:
        worker = running.worker
        info = await worker.wait()
        running.revoke()  # a dead worker's token is worth nothing, from the moment it died
        if self._stopping or running is not self.current:
            return
        self._mark_down(worker)
        self.readiness.last_exit = str(info) + (f" ({worker.kill_reason})" if worker.kill_reason else "")
        await self._release_current(channel_grace=_CRASH_GRACE_S)
        await self._restart_loop(f"provider {self.provider_id} [pid {worker.pid}] {self.readiness.last_exit}")

    def _mark_down(self, worker: WorkerHandle) -> None:
        # Whoever learns of the exit first (the watcher or a failed call) flips the state, so nobody who has
        # seen the crash can still see the provider as ready.
        if not self._stopping and worker is self.worker and self.state in ("ready", "replacing"):
            self.readiness.hold()
            self.readiness.set("restarting")

    async def _restart_loop(self, what: str) -> None:
        policy = self._budget.policy
        while not self._stopping:
            delay = self._budget.crashed(time.monotonic())
            if delay is None:
                self.readiness.set("failed")
                logger.error(
                    "%s; giving up after %d restarts in %gs: provider %s is failed until re-armed (hostel restart)",
                    what, policy.max_restarts, policy.window_s, self.provider_id,
                )  # fmt: skip
                return
            self.readiness.set("restarting")
            logger.warning(
                "%s; restarting in %gs (restart %d of %d in %gs)",
                what, delay, self._budget.crashes, policy.max_restarts, policy.window_s,
            )  # fmt: skip
            await asyncio.sleep(delay)
            async with self._lock:
                if self._stopping or self._serving():
                    return  # stopped meanwhile, or a replacement took over
                self.restarts += 1
                try:
                    await self._start()
                    return
                except ProviderStartError as exc:
                    self.readiness.last_exit = f"start failed ({exc.stage})"
                    what = (
                        f"restart of provider {self.provider_id} failed at stage {exc.stage}: "
                        f"{exc.message.splitlines()[0]}"
                    )

    def _serving(self) -> bool:
        return self.current is not None and self.current.alive

    def _serving_ready(self) -> bool:
        return self.state == "ready" and self._serving()

    async def _release_current(self, *, terminate: bool = False, channel_grace: float = 0.0) -> None:
        running, self.current = self.current, None
        if running is not None:
            closing = await running.release(terminate=terminate, channel_grace=channel_grace)
            if closing is not None:
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    # -- calls ---------------------------------------------------------------------------------------------

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Forward one call (``CallPath.call``)."""
        return await self.calls.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)

    # -- changing one provider -----------------------------------------------------------------------------

    async def replace(self, plan: ProviderPlan, env: Env | None) -> None:
        """Serve ``plan`` from now on without dropping a call: start its worker beside the current one, check
        its health, switch new calls to it, then let the old one finish its calls (``drain_grace_s``) and stop.

        If the new worker cannot start the old one keeps serving and ``ProviderStartError`` says why. A
        provider with no worker running (idle, stopped, failed, restarting) just takes the new plan; a failed
        or restarting one is started with it."""
        async with self._lock:
            if not self._serving_ready():
                self.prepared(plan, env)
                if self.state in ("failed", "restarting"):
                    await self._start_fresh()
                return
            old = self.current
            assert old is not None
            self.readiness.set("replacing")
            try:
                new = await self._starter.launch(plan, env, replacement=True)
                await self._check_new(new)
            except BaseException:
                if self.state == "replacing":
                    self.readiness.set("ready")
                raise
            finally:
                self._starter.replaced()
            if self._stopping:  # the host began to stop meanwhile
                await new.discard()
                return
            self.prepared(plan, env)
            await self._starter.drop_standby()
            self._adopt(new)
            logger.warning(
                "provider %s: now served by [pid %s]; [pid %s] finishes its calls and stops",
                self.provider_id, new.pid, old.pid,
            )  # fmt: skip
            self.in_background(self._retire(old))

    async def _check_new(self, new: RunningWorker) -> None:
        """A replacement must answer a health check before it takes calls; else it is stopped."""
        try:
            healthy = await new.channel.check_health(self.settings.probe_timeout_s)
            if not healthy:
                raise ProviderStartError(
                    f"its new worker did not answer a health check within {self.settings.probe_timeout_s:g}s",
                    provider_id=self.provider_id,
                    stage="health",
                    stderr_tail=new.worker.stderr_tail(),
                    pid=new.pid,
                )
        except BaseException:
            await new.discard()
            raise

    def prepared(self, plan: ProviderPlan, env: Env | None) -> None:
        """Start from this plan and env from now on (a reload built them), with a fresh restart budget."""
        self.env = env
        self._budget = RestartBudget(plan.policy.restart)
        self.update_policy(plan)

    def update_policy(self, plan: ProviderPlan) -> None:
        """Take what of ``plan`` needs no new worker: call limits, restart policy, start mode, idle time."""
        self.plan = plan
        self.admission.concurrent = plan.policy.max_concurrent_calls
        self.admission.queued = plan.policy.max_queued_calls
        self._budget.policy = plan.policy.restart

    async def _start_fresh(self) -> None:
        """Start with a fresh restart budget; ``failed`` (and the error raised) if the worker cannot start."""
        self._budget.reset()
        try:
            await self._start()
        except ProviderStartError as exc:
            self.readiness.set("failed")
            self.readiness.last_exit = f"start failed ({exc.stage})"
            raise

    async def _retire(self, old: RunningWorker) -> None:
        """A worker that no longer takes calls finishes them (``drain_grace_s``), then stops."""
        self._retiring.add(old)
        try:
            await old.retire(self.settings.drain_grace_s, self.settings.stop_grace_s)
        finally:
            self._retiring.discard(old)

    async def _detach(self, state: State) -> None:
        """Stop serving (new calls see ``state``) and retire the current worker, waiting for it."""
        self.readiness.set(state)
        self.readiness.hold()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in list(self._tasks) if t is not current), return_exceptions=True)
        await self._starter.drop_standby()
        running, self.current = self.current, None
        if running is not None:
            await self._retire(running)

    async def sleep(self, why: str) -> bool:
        """Stop an unused worker (``idle_stop_s``, or to make room under ``max_running``): the provider becomes
        ``idle`` and its next call starts it again. Nothing happens if it has calls in flight."""
        async with self._lock:
            if self.state != "ready" or self.busy() or self._stopping:
                return False
            logger.info("provider %s [pid %s]: stopping, %s", self.provider_id, self.worker and self.worker.pid, why)
            await self._detach("idle")
            return True

    async def start_by_operator(self) -> None:
        """Start a stopped, idle or failed provider now (nothing happens to a running one)."""
        async with self._lock:
            if self._serving() and self.state in ("ready", "replacing"):
                return
            if self.state in ("building", "starting"):
                raise ProviderUnavailableError(
                    f"provider {self.provider_id!r} is {self.state}; wait for it to finish",
                    provider_id=self.provider_id,
                )
            await self._start_fresh()

    async def rearm(self) -> None:
        """Restart the provider, re-arming it if ``failed``: a running one is replaced rolling (its new worker
        serves before the old one stops), a down one is started; its crash count starts over."""
        if self.state in ("building", "starting", "replacing"):
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}; wait for it to finish", provider_id=self.provider_id
            )
        logger.warning("provider %s: restart asked for", self.provider_id)
        self.restarts += 1
        if self._serving_ready():
            self._budget.reset()
            await self.replace(self.plan, self.env)
            return
        async with self._lock:
            await self._halt_watchers()
            await self._force()
            self.readiness.set("restarting")
            await self._start_fresh()

    # -- stopping ------------------------------------------------------------------------------------------

    def _halt(self) -> None:
        """From now on nothing is restarted and no call is admitted; probes and restart loops end."""
        self._stopping = True
        self.readiness.hold()
        for task in list(self._tasks):
            task.cancel()

    async def _halt_watchers(self) -> None:
        self._halt()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self, deadline: float | None = None, *, why: str = "stopped by request") -> None:
        """Stop, idempotently: no new call is admitted from the first moment; then the worker is asked to stop
        (finishing its calls and its provider's ``shutdown()``); what still runs at the end gets SIGTERM, then
        SIGKILL; ``stopped``.

        Without a ``deadline`` (an operator's stop, a removed provider) it waits for a lifecycle change under
        way, calls and streams in flight finish first (``drain_grace_s``), the worker gets ``stop_grace_s``, and
        calls are told ``why``. With a ``deadline`` (monotonic; the host stops) everything ends by then."""
        if deadline is None:
            async with self._lock:
                if self.state != "stopped":
                    self.readiness.stopped_by = why
                    await self._detach("stopped")
                    await asyncio.gather(*self._background, return_exceptions=True)
                    await self._force()
            return
        await self._halt_watchers()
        if self.current is not None:
            await self.current.ask_to_stop(deadline)
        if self._background:  # old workers still finishing their calls after a replacement
            await asyncio.wait(self._background, timeout=max(deadline - time.monotonic(), 0))
        await self._force()

    async def _force(self) -> None:
        """SIGTERM what is still running, SIGKILL it after a second, release everything; ``stopped``."""
        self._halt()
        if self.current is not None:
            logger.info("stopped provider %s [pid %s]", self.provider_id, self.current.pid)
        await self._release_current(terminate=True)
        await self._starter.drop_standby()
        for task in list(self._background):
            task.cancel()  # a retiring worker's own clean-up (SIGTERM, SIGKILL) runs as it is cancelled
        await asyncio.gather(*self._background, *self._closing, return_exceptions=True)
        self.readiness.set("stopped")

    def kill(self) -> None:
        """SIGKILL the worker (and a standby, a replacement, and old workers still draining) now, restarting
        nothing."""
        self._halt()
        for running in (self.current, *self._retiring):
            if running is not None:
                running.kill()
        self._starter.kill()
