"""One provider under supervision: its env, its current worker and channel, its restarts, its stop.

``ProviderSlot`` is where the policy lives (docs/supervision.md): start or refuse, restart a crash with the
``RestartBudget``'s backoff, kill a worker that misses its liveness probes (asking its stacks first) or
passes its memory limit, admit calls within its limits, stop within a deadline. It reaches its worker
only through the launcher seam (``WorkerHandle``, ``Channel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from hostel._admission import Admission, AdmittedStream, HostGate
from hostel._restarts import RestartBudget
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
from hostel.transport.callbacks import CallbackServer
from hostel.transport.channel import Channel

logger = logging.getLogger(__name__)

State = Literal["building", "starting", "ready", "restarting", "failed", "stopped"]

# How often the memory watchdog samples a worker's resident memory.
_MEMORY_POLL_S = 0.2
# How long a transport failure may wait for the worker's exit to be noticed before it is reported as is.
_CRASH_GRACE_S = 2.0
# Stopping past the grace: how long SIGTERM is given before SIGKILL. With the launchers' own bound on
# reaping a killed worker, this is the fixed allowance a stop may take beyond its grace.
_TERM_WAIT_S = 1.0
_REARM = "; re-arm it with `hostel restart {id}`, POST /v1/providers/{id}/restart or Host.restart({id!r})"


@dataclass(frozen=True)
class ProviderStatus:
    """A provider's state as seen by the host."""

    provider_id: str
    api: str
    provider_type: str
    state: State
    pid: int | None
    restarts: int
    last_exit: str | None
    env_path: str | None

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

    def launch_context(self) -> LaunchContext:
        """What the launchers need of this context."""
        return LaunchContext(
            self.settings, self.socket_dir, self.log_level, self.callbacks, self.base_dir or Path.cwd()
        )


class ProviderSlot:
    """Supervises one provider: its env, its current worker and channel, its restarts."""

    def __init__(
        self, plan: ProviderPlan, context: SupervisorContext, launchers: Launchers, gate: HostGate | None = None
    ) -> None:
        """``gate``: the host-wide count of calls this slot's calls count towards (its own by default)."""
        self.plan = plan
        self.admission = Admission(
            plan.provider_id,
            concurrent=plan.max_concurrent_calls,
            queued=plan.max_queued_calls,
            host=gate or HostGate(context.settings.max_calls),
        )
        self.launchers = launchers
        self.callbacks = context.callbacks
        self._token = ""
        self.spec_resolved = False  # a `module:` provider's plan takes the spec its package declares
        self.settings = context.settings
        self.envs = context.envs
        self.state: State = "stopped"
        self.env: Env | None = None
        self.worker: WorkerHandle | None = None
        self.channel: Channel | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self._generation = 0
        self._ready = asyncio.Event()
        self._stopping = False
        self._budget = RestartBudget(plan.restart)
        self._tasks: set[asyncio.Task[None]] = set()
        self._standby: WorkerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def provider_id(self) -> str:
        """The provider's id."""
        return self.plan.provider_id

    def status(self) -> ProviderStatus:
        """A snapshot of this provider's state."""
        return ProviderStatus(
            provider_id=self.provider_id,
            api=self.plan.api,
            provider_type=self.plan.provider_type,
            state=self.state,
            pid=self.worker.pid if self.worker and self.worker.exit_info is None else None,
            restarts=self.restarts,
            last_exit=self.last_exit,
            env_path=str(self.env.path) if self.env else None,
        )

    @property
    def launcher(self) -> WorkerLauncher:
        """The launcher of this provider's workers (its plan's, which may change once a package spec is read)."""
        return self.launchers.get(self.plan.launcher)

    async def build(self) -> Env | None:
        """Build (or reuse) the provider's env, if its launcher runs workers from a local env."""
        if not self.launcher.uses_env:
            return None
        self.state = "building"
        try:
            spec = await self.envs.describe(self.plan)
            self.env, _ = await self.envs.ensure(spec)
        except BaseException:
            self.state = "failed"
            raise
        return self.env

    def _new_worker(self, generation: int) -> WorkerHandle:
        return self.launcher.new_worker(self.plan, self.env, generation)

    async def _prepare_standby(self, generation: int) -> None:
        """``standby_workers``: spawn the next worker now, so a restart skips interpreter start-up and imports."""
        standby = self._new_worker(generation)
        try:
            await standby.spawn()
        except BaseException:
            await standby.kill()
            await standby.close()
            raise
        if self._stopping:
            await standby.kill()
            await standby.close()
            return
        self._standby = standby

    async def _drop_standby(self) -> None:
        standby, self._standby = self._standby, None
        if standby is not None:
            await standby.kill()
            await standby.close()

    async def start(self) -> None:
        """Start a worker and wait for its handshake; raise ``ProviderStartError``."""
        if self.env is None:
            await self.build()  # nothing to build for launchers that bring their own environment
        if self.callbacks is not None:  # a fresh token per worker: a dead worker's token is worth nothing
            self.callbacks.revoke(self._token)
            self._token = self.callbacks.grant(
                self.provider_id, self.plan.dependency_apis, max_in_flight=self.plan.max_concurrent_calls
            )
        self._stopping = False
        self.state = "starting" if self.state != "restarting" else "restarting"
        self._generation += 1
        standby, self._standby = self._standby, None
        if standby is not None and standby.exit_info is not None:
            await standby.close()  # the standby itself died: start afresh
            standby = None
        worker = standby or self._new_worker(self._generation)
        worker.token = self._token
        handshake = await worker.start(self.settings.start_timeout_s)
        self.worker = worker
        self.channel = self.launcher.connect(
            worker, handshake, provider_id=self.provider_id, explain=functools.partial(self._explain, worker)
        )
        self.state = "ready"
        self._ready.set()
        self._spawn(self._watch(worker))
        self._spawn(self._probe(worker, self.channel))
        if self.settings.standby_workers:
            self._spawn(self._prepare_standby(self._generation + 1))
        if self.plan.memory_mb and worker.rss_bytes() is not None:  # else its launcher enforces the limit
            self._spawn(self._watch_memory(worker, self.plan.memory_mb))

    async def _probe(self, worker: WorkerHandle, channel: Channel) -> None:
        """Liveness: a worker that misses ``probe_failures`` health checks in a row is killed (then restarted)."""
        settings = self.settings
        missed = 0
        while True:
            await asyncio.sleep(settings.probe_interval_s)
            if worker.exit_info is not None or worker is not self.worker or self._stopping:
                return  # this worker is gone: its successor has a probe of its own
            if await channel.check_health(settings.probe_timeout_s):
                missed = 0
                continue
            if worker.exit_info is not None or worker is not self.worker or self._stopping:
                return  # the miss was its death, or it is being dropped: not a hang
            missed += 1
            logger.warning(
                "provider %s [pid %s] missed liveness probe %d of %d",
                self.provider_id, worker.pid, missed, settings.probe_failures,
            )  # fmt: skip
            if missed >= settings.probe_failures:
                timeout = settings.probe_timeout_s
                reason = f"did not answer {missed} liveness probes in a row (probe_timeout_s={timeout:g})"
                stacks = await worker.dump_stacks()
                worker.kill_for(reason + (f"; its threads were at:\n{stacks}" if stacks else ""))
                return

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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        if not self._stopping and worker is self.worker and self.state == "ready":
            self._ready.clear()
            self.state = "restarting"

    async def _restart_loop(self, what: str) -> None:
        policy = self.plan.restart
        while not self._stopping:
            delay = self._budget.crashed(time.monotonic())
            if delay is None:
                self.state = "failed"
                logger.error(
                    "%s; giving up after %d restarts in %gs: provider %s is failed until re-armed (hostel restart)",
                    what, policy.max_restarts, policy.window_s, self.provider_id,
                )  # fmt: skip
                return
            self.state = "restarting"
            logger.warning(
                "%s; restarting in %gs (restart %d of %d in %gs)",
                what, delay, self._budget.crashes, policy.max_restarts, policy.window_s,
            )  # fmt: skip
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self.restarts += 1
            try:
                await self.start()
                return
            except ProviderStartError as exc:
                self.last_exit = f"start failed ({exc.stage})"
                what = (
                    f"restart of provider {self.provider_id} failed at stage {exc.stage}: {exc.message.splitlines()[0]}"
                )

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
            await self.worker.close()

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Forward one call to the current worker, waiting for a restart up to the call's deadline.

        ``timeout`` is capped at ``call_timeout_s`` (its default): no caller, a provider calling its ``deps``
        included, can make a call outlive what the operator configured."""
        limit = self.settings.call_timeout_s
        timeout = min(timeout, limit) if timeout is not None and not math.isnan(timeout) else limit
        deadline = time.monotonic() + timeout
        self._refuse_if_down()
        await self.admission.enter(timeout)
        try:
            result = await self._call(method, args, kwargs, deadline, provider_data)
        except BaseException:
            self.admission.leave()
            raise
        if hasattr(result, "__aiter__"):
            return AdmittedStream(result, self.admission)
        self.admission.leave()
        return result

    def _refuse_if_down(self) -> None:
        if self.state in ("failed", "stopped"):
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}"
                + (f" (last exit: {self.last_exit})" if self.last_exit else "")
                + (_REARM.format(id=self.provider_id) if self.state == "failed" else ""),
                provider_id=self.provider_id,
            )

    async def _call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], deadline: float, provider_data: Any
    ) -> Any:
        timeout = deadline - time.monotonic()
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), max(timeout, 0))
            except TimeoutError:
                raise ProviderUnavailableError(
                    f"provider {self.provider_id!r} was still {self.state} "
                    f"when the call's {timeout:g}s deadline passed",
                    provider_id=self.provider_id,
                ) from None
        channel = self.channel
        if channel is None:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}", provider_id=self.provider_id
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CallTimeoutError(
                f"call {method}() on provider {self.provider_id!r} timed out", provider_id=self.provider_id
            )
        return await channel.call(method, args, kwargs, timeout=remaining, provider_data=provider_data)

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
        """SIGTERM what is still running, SIGKILL it after a second, release everything; marks ``stopped``."""
        self.begin_stop()
        worker = self.worker
        if worker is not None and worker.exit_info is None:
            await worker.terminate(_TERM_WAIT_S)
        if worker is not None:
            logger.info("stopped provider %s [pid %s]", self.provider_id, worker.pid)
        await self._drop_worker()
        await self._drop_standby()
        await asyncio.gather(*self._closing, return_exceptions=True)
        self.state = "stopped"

    def kill(self) -> None:
        """SIGKILL the worker (and a standby) now, restarting nothing."""
        self.begin_stop()
        for worker in (self.worker, self._standby):
            if worker is not None:
                worker.signal(signal.SIGKILL)

    async def rearm(self) -> None:
        """Start the provider afresh whatever its state (``failed`` included): the current worker, if any, is
        stopped gracefully first, and the crash count starts over. Raises ``ProviderStartError``."""
        if self.state in ("building", "starting"):
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}; wait for it to finish", provider_id=self.provider_id
            )
        await self.stop()
        self._budget.reset()
        self.state = "restarting"
        self.restarts += 1
        logger.warning("provider %s: restart asked for", self.provider_id)
        try:
            await self.start()
        except ProviderStartError as exc:
            self.state = "failed"
            self.last_exit = f"start failed ({exc.stage})"
            raise
