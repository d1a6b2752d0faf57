"""One provider under supervision: its env, its current worker and channel, its restarts, its stop.

``ProviderSlot`` is where the policy lives (docs/supervision.md, docs/lifecycle.md): start or refuse,
restart a crash with the ``RestartBudget``'s backoff, kill a worker that misses its liveness probes (asking
its stacks first) or passes its memory limit, admit calls within its limits, replace its worker without
dropping a call (start the new one, switch, drain the old), start lazily on the first call and stop when
idle, stop within a deadline. It reaches its worker only through the launcher seam (``WorkerHandle``,
``Channel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hostel._admission import Admission, AdmittedStream, HostGate, InFlight
from hostel._call_log import log_failed_call, next_call_id
from hostel._restarts import RestartBudget
from hostel._usage import process_usage
from hostel.config import HostelSettings
from hostel.config.plan import ProviderPlan
from hostel.envs import Env, EnvManager
from hostel.errors import (
    CallTimeoutError,
    HostelError,
    ProviderCrashedError,
    ProviderStartError,
    ProviderUnavailableError,
)
from hostel.launch import Launchers
from hostel.launch.base import LaunchContext, WorkerHandle, WorkerLauncher
from hostel.liveness import probe_liveness
from hostel.transport.callbacks import CallbackServer
from hostel.transport.channel import Channel

logger = logging.getLogger(__name__)

# Best first: a provider with replicas is in the best state any of its replicas is in (it serves if any does).
State = Literal["ready", "replacing", "restarting", "starting", "building", "idle", "failed", "stopped"]
# States in which the provider has a worker that is, or is about to be, running.
RUNNING: frozenset[State] = frozenset({"starting", "ready", "restarting", "replacing"})

# How often the memory watchdog samples a worker's resident memory.
_MEMORY_POLL_S = 0.2
# How long a transport failure may wait for the worker's exit to be noticed before it is reported as is.
_CRASH_GRACE_S = 2.0
# Stopping past the grace: how long SIGTERM is given before SIGKILL. With the launchers' own bound on
# reaping a killed worker, this is the fixed allowance a stop may take beyond its grace.
_TERM_WAIT_S = 1.0
_REARM = "; re-arm it with `hostel restart {id}`, POST /v1/providers/{id}/restart or Host.restart({id!r})"
_RESTART = "; start it with `hostel start {id}`, POST /v1/hostel/providers/{id}/start or Host.start_provider({id!r})"


@dataclass(frozen=True)
class ProviderStatus:
    """A provider's state as seen by the host; resource figures only when asked for (``status(usage=True)``)."""

    provider_id: str
    api: str
    provider_type: str
    state: State
    pid: int | None
    restarts: int
    last_exit: str | None
    env_path: str | None
    new_pid: int | None = None  # while ``replacing``: the new worker's pid (``pid`` is the one still serving)
    rss_bytes: int | None = None  # the worker's resident memory
    pss_bytes: int | None = None  # its proportional share: shared pages counted once across processes
    cpu_seconds: float | None = None  # user + system CPU time of the current worker
    replica: int | None = None  # in ``replicas``: which replica this is
    replicas: tuple[ProviderStatus, ...] = ()  # with ``replicas: N`` > 1: each replica's own status

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class SupervisorContext:
    """What every slot shares: settings, the env manager, the socket directory, the callback service."""

    settings: HostelSettings
    envs: EnvManager
    socket_dir: Path
    log_level: str = "WARNING"
    callbacks: CallbackServer | None = None
    external_apis: frozenset[str] = frozenset()  # APIs served outside the host, which providers may depend on
    base_dir: Path | None = None  # the run config's directory: relative paths in its settings resolve against it
    # Run on every new worker before it serves (the host tells it of the resources its provider owns).
    prime: Callable[[ProviderPlan, Channel], Awaitable[None]] | None = None

    def launch_context(self) -> LaunchContext:
        """What the launchers need of this context."""
        return LaunchContext(
            self.settings, self.socket_dir, self.log_level, self.callbacks, self.base_dir or Path.cwd()
        )


Wake = Callable[["ProviderSlot"], Coroutine[Any, Any, None]]


async def _start_alone(slot: ProviderSlot) -> None:
    await slot.start_if_idle()


class ProviderSlot:
    """Supervises one provider: its env, its current worker and channel, its restarts."""

    def __init__(
        self,
        plan: ProviderPlan,
        context: SupervisorContext,
        launchers: Launchers,
        gate: HostGate | None = None,
        wake: Wake = _start_alone,
    ) -> None:
        """``gate``: the host-wide count of calls this slot's calls count towards (its own by default).
        ``wake``: how a lazy provider is started for its first call (the supervisor's starts its dependencies
        and makes room under ``max_running`` first)."""
        self.plan = plan
        self.admission = Admission(
            plan.provider_id,
            concurrent=plan.max_concurrent_calls,
            queued=plan.max_queued_calls,
            host=gate or HostGate(context.settings.max_calls),
        )
        self.launchers = launchers
        self.callbacks = context.callbacks
        self._prime = context.prime
        self.spec_resolved = False  # a `module:` provider's plan takes the spec its package declares
        self.settings = context.settings
        self.envs = context.envs
        self.state: State = "stopped"
        self.env: Env | None = None
        self.worker: WorkerHandle | None = None
        self.channel: Channel | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.last_used = time.monotonic()  # when a call last began or ended
        self._wake_hook = wake
        self._waking: asyncio.Task[None] | None = None
        self._generation = 0
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()  # set while the provider is failed or stopped: waiting calls give up
        self._lock = asyncio.Lock()  # one lifecycle change at a time: start, replace, stop, sleep
        self._stopping = False
        self._closed = False  # the host is stopping: nothing may start any more
        self._launching: set[asyncio.Task[Any]] = set()  # tasks starting a worker, cancelled if the host stops
        self._stopped_by: str | None = None  # why an operator stopped it, so calls are told
        self._budget = RestartBudget(plan.restart)
        self._tasks: set[asyncio.Task[None]] = set()  # the current worker's watchers
        self._background: set[asyncio.Task[None]] = set()  # retiring old workers, idle stops
        self._standby: WorkerHandle | None = None
        self._next: WorkerHandle | None = None  # the replacement being started
        self._in_flight: dict[WorkerHandle, InFlight] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def provider_id(self) -> str:
        """The provider's id."""
        return self.plan.provider_id

    @property
    def stopping(self) -> bool:
        """Whether the slot is stopping (nothing restarts, no call is admitted)."""
        return self._stopping

    def _set_state(self, state: State) -> None:
        self.state = state
        if state in ("failed", "stopped"):
            self._settled.set()
        else:
            self._settled.clear()

    def status(self, *, usage: bool = False) -> ProviderStatus:
        """A snapshot of this provider's state; with ``usage``, the current worker's memory and CPU time."""
        live = self.worker if self.worker is not None and self.worker.exit_info is None else None
        figures = process_usage(live.pid) if usage and live is not None and live.rss_bytes() is not None else None
        return ProviderStatus(
            provider_id=self.provider_id,
            api=self.plan.api,
            provider_type=self.plan.provider_type,
            state=self.state,
            pid=live.pid if live is not None else None,
            restarts=self.restarts,
            last_exit=self.last_exit,
            env_path=str(self.env.path) if self.env else None,
            new_pid=self._next.pid if self._next is not None else None,
            rss_bytes=figures.rss_bytes if figures else None,
            pss_bytes=figures.pss_bytes if figures else None,
            cpu_seconds=figures.cpu_seconds if figures else None,
        )

    @property
    def launcher(self) -> WorkerLauncher:
        """The launcher of this provider's workers (its plan's, which may change once a package spec is read)."""
        return self.launchers.get(self.plan.launcher)

    def busy(self) -> bool:
        """Whether the current worker has calls (or open streams) in flight."""
        in_flight = self._in_flight.get(self.worker) if self.worker is not None else None
        return in_flight is not None and in_flight.count > 0

    async def env_for(self, plan: ProviderPlan) -> Env | None:
        """Build (or reuse) the env ``plan`` needs, if its launcher runs workers from a local env; the slot's
        own env is left as it is."""
        if not self.launchers.get(plan.launcher).uses_env:
            return None
        return (await self.envs.ensure(await self.envs.describe(plan)))[0]

    async def build(self) -> Env | None:
        """Build (or reuse) the provider's env, if its launcher runs workers from a local env."""
        if not self.launcher.uses_env:
            return None
        self._set_state("building")
        try:
            self.env = await self.env_for(self.plan)
        except BaseException:
            self._set_state("failed")
            raise
        return self.env

    def fail(self, why: str) -> None:
        """Mark a provider that could not be made ready (its env failed to build) ``failed``."""
        self._set_state("failed")
        self.last_exit = why

    def expect(self) -> None:
        """A reload is bringing this new provider up: its calls wait for it (up to their deadlines)."""
        self._set_state("building")

    def open(self) -> None:
        """The host starts (again): workers may be started."""
        self._closed = False

    def close(self) -> None:
        """The host stops: no worker may start from now on, and starts under way are cancelled (what they
        started is stopped); then ``begin_stop``."""
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._launching):
            if task is not current:
                task.cancel()
        self.begin_stop()

    def idle(self) -> None:
        """Mark a lazy provider ready to start on its first call (its env is built)."""
        self._stopping = False
        self._stopped_by = None
        self._set_state("idle")

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
        if self.env is None:
            await self.build()  # nothing to build for launchers that bring their own environment
        self._stopping = False
        self._stopped_by = None
        self._set_state("starting" if self.state != "restarting" else "restarting")
        standby, self._standby = self._standby, None
        if standby is not None and standby.exit_info is not None:
            await standby.close()  # the standby itself died: start afresh
            standby = None
        worker, channel = await self._launch(self.plan, self.env, standby)
        self._adopt(worker, channel)

    async def _launch(
        self, plan: ProviderPlan, env: Env | None, standby: WorkerHandle | None = None, *, replacement: bool = False
    ) -> tuple[WorkerHandle, Channel]:
        """A started worker for ``plan`` and its channel, not yet serving; on failure nothing is left running.
        A ``replacement`` is shown in the status (``new_pid``) while it starts."""
        if self._closed:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} cannot start: the host is stopping", provider_id=self.provider_id
            )
        self._generation += 1
        launcher = self.launchers.get(plan.launcher)
        worker = standby or launcher.new_worker(plan, env, self._generation)
        if replacement:
            self._next = worker
        if self.callbacks is not None:  # a token per worker: a dead worker's token is worth nothing
            worker.token = self.callbacks.grant(
                plan.provider_id, plan.dependency_apis, max_in_flight=plan.max_concurrent_calls
            )
        task = asyncio.current_task()
        if task is not None:
            self._launching.add(task)
        try:
            handshake = await worker.start(self.settings.start_timeout_s)
            channel = launcher.connect(
                worker, handshake, provider_id=self.provider_id, explain=functools.partial(self._explain, worker)
            )
            if self._prime is not None:
                await self._prime(plan, channel)
            if self._closed:  # the host began to stop as this worker came up: it must not outlive the host
                await channel.close()
                raise ProviderUnavailableError(
                    f"provider {self.provider_id!r}: the host stopped while it started", provider_id=self.provider_id
                )
        except BaseException:
            await self._discard(worker)
            raise
        finally:
            if task is not None:
                self._launching.discard(task)
        return worker, channel

    def _adopt(self, worker: WorkerHandle, channel: Channel) -> None:
        """Make ``worker`` the one that serves, and watch it."""
        self.worker, self.channel = worker, channel
        self._in_flight[worker] = InFlight()
        self.last_used = time.monotonic()
        self._set_state("ready")
        self._ready.set()
        self._spawn(self._watch(worker))
        self._spawn(probe_liveness(self.provider_id, worker, channel, self.settings, lambda: self._watches(worker)))
        if self.settings.standby_workers:
            self._spawn(self._prepare_standby(self._generation + 1))
        if self.plan.memory_mb and worker.rss_bytes() is not None:  # else its launcher enforces the limit
            self._spawn(self._watch_memory(worker, self.plan.memory_mb))
        if self.plan.idle_stop_s is not None:
            self._spawn(self._watch_idle(worker, self.plan.idle_stop_s))

    def _new_worker(self, generation: int) -> WorkerHandle:
        return self.launcher.new_worker(self.plan, self.env, generation)

    async def _prepare_standby(self, generation: int) -> None:
        """``standby_workers``: spawn the next worker now, so a restart skips interpreter start-up and imports."""
        standby = self._new_worker(generation)
        try:
            await standby.spawn()
        except BaseException:
            await self._discard(standby)
            raise
        if self._stopping:
            await self._discard(standby)
            return
        self._standby = standby

    async def _drop_standby(self) -> None:
        standby, self._standby = self._standby, None
        if standby is not None:
            await self._discard(standby)

    async def _discard(self, worker: WorkerHandle, channel: Channel | None = None) -> None:
        """Get rid of a worker that never served, or must not (a failed start or check, a standby, a replacement
        the host stopped meanwhile): its callback token revoked, its channel closed, the process killed."""
        if self.callbacks is not None and worker.token:
            self.callbacks.revoke(worker.token)
        if channel is not None:
            await channel.close()
        with contextlib.suppress(Exception):
            await worker.kill()
            await worker.close()

    async def wake(self, timeout: float | None) -> None:
        """Start a lazy (``idle``) provider for a call, waiting ``timeout`` seconds at most (``None``: as long as
        its start takes); callers arriving meanwhile share the one start. ``ProviderStartError`` if it cannot."""
        if self._waking is None or self._waking.done():
            self._waking = asyncio.create_task(self._wake_hook(self))
            self._waking.add_done_callback(_retrieve)
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

    async def _watch_memory(self, worker: WorkerHandle, limit_mb: int) -> None:
        """``limits.memory_mb``: a worker whose resident memory passes the limit is killed (then restarted)."""
        limit = limit_mb * 2**20
        while worker.exit_info is None:
            rss = worker.rss_bytes()
            if rss is not None and rss > limit:
                worker.kill_for(
                    f"exceeded its memory limit of {limit_mb} MB (limits.memory_mb; RSS {rss / 2**20:.0f} MB)"
                )
                return
            await asyncio.sleep(_MEMORY_POLL_S)

    async def _watch_idle(self, worker: WorkerHandle, idle_s: float) -> None:
        """``idle_stop_s``: stop a worker nobody called for that long; the next call starts it again."""
        while worker is self.worker and not self._stopping:
            await asyncio.sleep(max(self.last_used + idle_s - time.monotonic(), 0.05))
            if worker is not self.worker or self._stopping or self.state != "ready":
                return
            if not self.busy() and time.monotonic() - self.last_used >= idle_s:
                # Not one of this worker's tasks: sleeping cancels those.
                self._in_background(self.sleep(f"no call for {idle_s:g}s (idle_stop_s)"))
                return

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_retrieve)

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

    async def _watch(self, worker: WorkerHandle) -> None:
        info = await worker.wait()
        if self.callbacks is not None:  # a dead worker's token is worth nothing, from the moment it died
            self.callbacks.revoke(worker.token)
        if self._stopping or worker is not self.worker:
            return
        self._mark_down(worker)
        self.last_exit = str(info) + (f" ({worker.kill_reason})" if worker.kill_reason else "")
        await self._drop_worker(grace=_CRASH_GRACE_S)
        await self._restart_loop(f"provider {self.provider_id} [pid {worker.pid}] {self.last_exit}")

    def _mark_down(self, worker: WorkerHandle) -> None:
        # Whoever learns of the exit first (the watcher or a failed call) flips the state, so nobody who has
        # seen the crash can still see the provider as ready.
        if not self._stopping and worker is self.worker and self.state in ("ready", "replacing"):
            self._ready.clear()
            self._set_state("restarting")

    async def _restart_loop(self, what: str) -> None:
        policy = self._budget.policy
        while not self._stopping:
            delay = self._budget.crashed(time.monotonic())
            if delay is None:
                self._set_state("failed")
                logger.error(
                    "%s; giving up after %d restarts in %gs: provider %s is failed until re-armed (hostel restart)",
                    what, policy.max_restarts, policy.window_s, self.provider_id,
                )  # fmt: skip
                return
            self._set_state("restarting")
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
                    self.last_exit = f"start failed ({exc.stage})"
                    what = (
                        f"restart of provider {self.provider_id} failed at stage {exc.stage}: "
                        f"{exc.message.splitlines()[0]}"
                    )

    def _serving(self) -> bool:
        return self.worker is not None and self.worker.exit_info is None and self.channel is not None

    def _serving_ready(self) -> bool:
        return self.state == "ready" and self._serving()

    async def _drop_worker(self, *, grace: float = 0.0) -> None:
        channel, self.channel = self.channel, None
        if channel is not None:
            if grace:
                # In-flight calls must see the transport fail (and so report the crash), not a channel closed
                # under them: close in the background, after they had their chance.
                self._closing.add(task := asyncio.create_task(channel.close(grace=grace)))
                task.add_done_callback(self._closing.discard)
            else:
                await channel.close()
        if self.worker is not None:
            self._in_flight.pop(self.worker, None)
            await self.worker.close()

    # -- calls ---------------------------------------------------------------------------------------------

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Forward one call to the current worker, waiting for a start or restart up to the call's deadline.

        ``timeout`` is capped at ``call_timeout_s`` (its default): no caller, a provider calling its ``deps``
        included, can make a call outlive what the operator configured."""
        limit = self.settings.call_timeout_s
        timeout = min(timeout, limit) if timeout is not None and not math.isnan(timeout) else limit
        deadline = time.monotonic() + timeout
        call_id = next_call_id()
        try:
            self._refuse_if_down()
            await self.admission.enter(timeout)
        except BaseException as exc:
            log_failed_call(self.provider_id, method, call_id, exc)
            raise
        self.last_used = time.monotonic()
        try:
            result, in_flight, unbind = await self._call(method, args, kwargs, deadline, provider_data)
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
        self.last_used = time.monotonic()

    def _refuse_if_down(self) -> None:
        if self.state in ("failed", "stopped"):
            hint = _REARM if self.state == "failed" else _RESTART if self._stopped_by else ""
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}"
                + (f" ({self._stopped_by})" if self.state == "stopped" and self._stopped_by else "")
                + (f" (last exit: {self.last_exit})" if self.last_exit and self.state == "failed" else "")
                + hint.format(id=self.provider_id),
                provider_id=self.provider_id,
            )

    async def _wait_ready(self, deadline: float) -> None:
        """Wait for a worker to serve, until ``deadline``; give up at once if the provider fails or stops."""
        timeout = deadline - time.monotonic()
        ready = asyncio.ensure_future(self._ready.wait())
        settled = asyncio.ensure_future(self._settled.wait())
        try:
            await asyncio.wait({ready, settled}, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            settled.cancel()
        if self._ready.is_set():
            return
        self._refuse_if_down()
        raise ProviderUnavailableError(
            f"provider {self.provider_id!r} was still {self.state} when the call's {timeout:g}s deadline passed",
            provider_id=self.provider_id,
        )

    async def _call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], deadline: float, provider_data: Any
    ) -> tuple[Any, InFlight, Callable[[], None]]:
        if self.state == "idle":
            await self.wake(deadline - time.monotonic())
        if not self._ready.is_set():
            await self._wait_ready(deadline)
        worker, channel = self.worker, self.channel
        in_flight = self._in_flight.get(worker) if worker is not None else None
        if worker is None or channel is None or in_flight is None:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}", provider_id=self.provider_id
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallTimeoutError(
                f"call {method}() on provider {self.provider_id!r} timed out", provider_id=self.provider_id
            )
        in_flight.enter()
        # The worker's deps calls during this one speak for this call's user, and for no one else.
        provider_data, unbind = self._bind_call(worker, provider_data)
        try:
            result = await channel.call(method, args, kwargs, timeout=remaining, provider_data=provider_data)
        except BaseException:
            unbind()
            in_flight.leave()
            raise
        return result, in_flight, unbind

    def _bind_call(self, worker: WorkerHandle, provider_data: Any) -> tuple[Any, Callable[[], None]]:
        if self.callbacks is None or not worker.token:
            return provider_data, _nothing
        return self.callbacks.bind_call(worker.token, provider_data)

    # -- replacing and stopping one provider ------------------------------------------------------------

    async def replace(self, plan: ProviderPlan, env: Env | None) -> None:
        """Serve ``plan`` from now on without dropping a call: start its worker beside the current one, check
        its health, switch new calls to it, then let the old one finish its calls (``drain_grace_s``) and stop.

        If the new worker cannot start the old one keeps serving and ``ProviderStartError`` says why. A
        provider with no worker running (idle, stopped, failed, restarting) just takes the new plan; a failed
        or restarting one is started with it."""
        async with self._lock:
            if not self._serving_ready():
                self._take(plan, env)
                if self.state in ("failed", "restarting"):
                    await self._start_fresh()
                return
            old_worker, old_channel = self.worker, self.channel
            assert old_worker is not None and old_channel is not None
            self._set_state("replacing")
            try:
                worker, channel = await self._launch(plan, env, replacement=True)
                await self._check_new(worker, channel)
            except BaseException:
                if self.state == "replacing":
                    self._set_state("ready")
                raise
            finally:
                self._next = None
            if self._stopping:  # the host began to stop meanwhile
                await self._discard(worker, channel)
                return
            self._take(plan, env)
            await self._drop_standby()
            self._adopt(worker, channel)
            logger.warning(
                "provider %s: now served by [pid %s]; [pid %s] finishes its calls and stops",
                self.provider_id, worker.pid, old_worker.pid,
            )  # fmt: skip
            self._in_background(self._retire(old_worker, old_channel, self.settings.drain_grace_s))

    async def _check_new(self, worker: WorkerHandle, channel: Channel) -> None:
        """A replacement must answer a health check before it takes calls; else it is stopped."""
        try:
            healthy = await channel.check_health(self.settings.probe_timeout_s)
            if not healthy:
                raise ProviderStartError(
                    f"its new worker did not answer a health check within {self.settings.probe_timeout_s:g}s",
                    provider_id=self.provider_id,
                    stage="health",
                    stderr_tail=worker.stderr_tail(),
                    pid=worker.pid,
                )
        except BaseException:
            await self._discard(worker, channel)
            raise

    def adopt_spec(self, plan: ProviderPlan) -> None:
        """Its package's declared spec, read once its env was built (``module:`` providers), from now on."""
        self.plan, self.spec_resolved = plan, True

    def prepared(self, plan: ProviderPlan, env: Env | None) -> None:
        """A reload built this new provider's env (and adopted its package's spec): start from them."""
        self._take(plan, env)
        self.spec_resolved = plan.spec.from_package

    def _take(self, plan: ProviderPlan, env: Env | None) -> None:
        """Adopt a new plan and env (the next worker starts from them), with a fresh restart budget."""
        self.plan, self.env = plan, env
        self._budget = RestartBudget(plan.restart)
        self.update_policy(plan)

    def update_policy(self, plan: ProviderPlan) -> None:
        """Take what of ``plan`` needs no new worker: call limits, restart policy, start mode, idle time."""
        self.plan = plan
        self.admission.concurrent = plan.max_concurrent_calls
        self.admission.queued = plan.max_queued_calls
        self._budget.policy = plan.restart

    async def _start_fresh(self) -> None:
        """Start with a fresh restart budget; ``failed`` (and the error raised) if the worker cannot start."""
        self._budget.reset()
        try:
            await self._start()
        except ProviderStartError as exc:
            self._set_state("failed")
            self.last_exit = f"start failed ({exc.stage})"
            raise

    async def _retire(self, worker: WorkerHandle, channel: Channel, drain_s: float) -> None:
        """Let a worker that no longer takes calls finish its calls and streams (``drain_s`` at most), then stop
        it: the Shutdown RPC and ``stop_grace_s``, then SIGTERM and SIGKILL."""
        try:
            in_flight = self._in_flight.get(worker)
            if in_flight is not None and not await in_flight.drained(drain_s):
                logger.warning(
                    "provider %s [pid %s]: %d calls still in flight after %gs (drain_grace_s); stopping it anyway",
                    self.provider_id, worker.pid, in_flight.count, drain_s,
                )  # fmt: skip
            grace = self.settings.stop_grace_s
            if worker.exit_info is None and grace > 0:
                await channel.request_shutdown(grace, timeout=min(1.0, grace))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(worker.wait(), grace)
        finally:
            if worker.exit_info is None:
                await worker.terminate(_TERM_WAIT_S)
            await channel.close()
            await worker.close()
            if self.callbacks is not None:
                self.callbacks.revoke(worker.token)
            self._in_flight.pop(worker, None)
            logger.info("provider %s: stopped [pid %s]", self.provider_id, worker.pid)

    async def _detach(self, state: State) -> None:
        """Stop serving (new calls see ``state``) and retire the current worker, waiting for it."""
        self._set_state(state)
        self._ready.clear()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in list(self._tasks) if t is not current), return_exceptions=True)
        await self._drop_standby()
        worker, channel = self.worker, self.channel
        self.channel = None
        if worker is not None and channel is not None:
            await self._retire(worker, channel, self.settings.drain_grace_s)

    async def sleep(self, why: str) -> bool:
        """Stop an unused worker (``idle_stop_s``, or to make room under ``max_running``): the provider becomes
        ``idle`` and its next call starts it again. Nothing happens if it has calls in flight."""
        async with self._lock:
            if self.state != "ready" or self.busy() or self._stopping:
                return False
            logger.info("provider %s [pid %s]: stopping, %s", self.provider_id, self.worker and self.worker.pid, why)
            await self._detach("idle")
            return True

    async def stop_by_operator(self) -> None:
        """Stop the provider until it is started again: new calls are refused at once, calls in flight finish
        (``drain_grace_s``), then the worker stops."""
        async with self._lock:
            if self.state == "stopped":
                return
            self._stopped_by = "stopped by request"
            await self._detach("stopped")

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
            await self._stop_now()
            self._set_state("restarting")
            await self._start_fresh()

    async def _stop_now(self) -> None:
        self.begin_stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.force_stop()

    # -- stopping the host ---------------------------------------------------------------------------------

    def begin_stop(self) -> None:
        """From now on nothing is restarted and no call is admitted; probes and restart loops end."""
        self._stopping = True
        self._ready.clear()
        for task in list(self._tasks):
            task.cancel()

    async def stop(self, deadline: float | None = None) -> None:
        """Stop the worker: Shutdown RPC and its grace (until ``deadline``, monotonic), then ``force_stop``."""
        await self.shutdown(time.monotonic() + self.settings.stop_grace_s if deadline is None else deadline)
        await self.force_stop()

    async def shutdown(self, deadline: float) -> None:
        """Ask the worker to stop (finishing its calls and its provider's ``shutdown()``); wait until ``deadline``
        (monotonic) at most. What still runs then is ``force_stop``'s."""
        self.begin_stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        worker, channel = self.worker, self.channel
        if worker is None or worker.exit_info is not None or channel is None:
            return
        remaining = deadline - time.monotonic()
        if remaining > 0:
            await channel.request_shutdown(remaining, timeout=min(1.0, remaining))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(worker.wait(), max(deadline - time.monotonic(), 0))

    async def force_stop(self) -> None:
        """SIGTERM what is still running, SIGKILL it after a second, release everything; marks ``stopped``.
        Old workers still finishing their calls after a replacement are stopped the same way."""
        self.begin_stop()
        worker = self.worker
        if worker is not None and worker.exit_info is None:
            await worker.terminate(_TERM_WAIT_S)
        if worker is not None:
            logger.info("stopped provider %s [pid %s]", self.provider_id, worker.pid)
        await self._drop_worker()
        await self._drop_standby()
        for task in list(self._background):
            task.cancel()  # a retiring worker's own clean-up (SIGTERM, SIGKILL) runs as it is cancelled
        await asyncio.gather(*self._background, *self._closing, return_exceptions=True)
        self._set_state("stopped")

    def kill(self) -> None:
        """SIGKILL the worker (and a standby, and old workers still draining) now, restarting nothing."""
        self.begin_stop()
        for worker in (self.worker, self._standby, self._next, *self._in_flight):
            if worker is not None:
                worker.signal(signal.SIGKILL)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's failure as seen (its callers, if any, were told)."""
    if not task.cancelled():
        task.exception()


def _nothing() -> None:
    pass
