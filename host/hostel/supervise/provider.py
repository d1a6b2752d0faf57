"""One provider under supervision: a flat set of equal replicas (``replicas: N``; one by default), docs/supervision.md.

Each ``Replica`` has its own worker, restarts, probes, memory watchdog and call limits, so one crashing
replica fails only its own calls and restarts while the others serve. A call goes to the least-loaded
replica that serves (a stream stays on the worker that returned it); the provider's state is the best of
its replicas'. Operations on the provider apply to every replica; those that could fail calls (restart,
replace) go one replica at a time. The provider owns what is the provider's, not a replica's: its plan
and env, and whether its package's declared spec was adopted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.errors import HostelError
from hostel.launch import Launchers
from hostel.launch.base import WorkerHandle
from hostel.supervise.admission import HostGate
from hostel.supervise.context import SupervisorContext
from hostel.supervise.replica import Replica
from hostel.supervise.status import ProviderStatus, State, best, combined
from hostel.transport.channel import Channel

Wake = Callable[["Provider"], Coroutine[Any, Any, None]]


class Provider:
    """A provider and its replicas; see the module's docstring."""

    def __init__(
        self, plan: ProviderPlan, context: SupervisorContext, launchers: Launchers, gate: HostGate, wake: Wake
    ) -> None:
        """``gate``: the host-wide count of calls; ``wake``: how a lazy provider is started for its first call."""
        self.plan = plan
        self.env: Env | None = None
        self.spec_resolved = False  # a `module:` provider's plan takes the spec its package declares
        self._context, self._launchers, self._gate, self._wake = context, launchers, gate, wake
        self.members: list[Replica] = [self._member(i) for i in range(plan.policy.replicas)]

    def _member(self, index: int) -> Replica:
        plan = dataclasses.replace(self.plan, replica=index)
        return Replica(plan, self._context, self._launchers, self._gate, wake=self._wake_for_member)

    async def _wake_for_member(self, _member: Replica) -> None:
        await self._wake(self)

    @property
    def provider_id(self) -> str:
        """The provider's id."""
        return self.plan.provider_id

    @property
    def state(self) -> State:
        """The best state any replica is in (the provider serves if any replica does)."""
        return best([m.state for m in self.members])

    @property
    def restarts(self) -> int:
        """How many times its workers were restarted, every replica's counted."""
        return sum(m.restarts for m in self.members)

    @property
    def last_used(self) -> float:
        """When a call last began or ended on any replica (monotonic)."""
        return max(m.last_used for m in self.members)

    @property
    def worker(self) -> WorkerHandle | None:
        """The first replica's worker, if it has one."""
        return self.members[0].worker

    @property
    def channel(self) -> Channel | None:
        """The first replica's channel, if it has one."""
        return self.members[0].channel

    def status(self, *, usage: bool = False) -> ProviderStatus:
        """The provider's status (with each replica's own in ``replicas`` when there are several)."""
        return combined([m.status(usage=usage) for m in self.members])

    def busy(self) -> bool:
        """Whether any replica has calls in flight."""
        return any(m.busy() for m in self.members)

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Forward one call to the least-loaded replica that serves (the first one waits for a start if none
        does)."""
        serving = [m for m in self.members if m.state in ("ready", "replacing") and not m.stopping]
        chosen = min(serving, key=lambda m: m.admission.load) if serving else self.members[0]
        return await chosen.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)

    # -- its plan and env ----------------------------------------------------------------------------------

    async def env_for(self, plan: ProviderPlan) -> Env | None:
        """Build (or reuse) the env ``plan`` needs, if its launcher runs workers from a local env (``None`` for
        launchers that bring their own); the provider's own env is left as it is."""
        if not self._launchers.get(plan.worker.launcher).uses_env:
            return None
        envs = self._context.envs
        return (await envs.ensure(await envs.describe(plan)))[0]

    async def build(self) -> Env | None:
        """Build (or reuse) the env once (``building`` meanwhile, ``failed`` if it cannot be); every replica runs
        from it."""
        if not self._launchers.get(self.plan.worker.launcher).uses_env:
            return None
        self.expect()
        try:
            self.env = await self.env_for(self.plan)
        except BaseException:
            self.fail()
            raise
        self._each_takes(self.plan, self.env)
        return self.env

    def adopt_spec(self, plan: ProviderPlan) -> None:
        """Its package's declared spec, read once its env was built (``module:`` providers), from now on."""
        self.spec_resolved = True
        self.update_policy(plan)

    def prepared(self, plan: ProviderPlan, env: Env | None) -> None:
        """A reload built this new provider's env (and adopted its package's spec): start from them."""
        self.spec_resolved = plan.spec.from_package
        self.plan, self.env = plan.with_policy(replicas=len(self.members)), env
        self._each_takes(plan, env)

    def _each_takes(self, plan: ProviderPlan, env: Env | None) -> None:
        for member in self.members:
            member.prepared(dataclasses.replace(plan, replica=member.plan.replica), env)

    def update_policy(self, plan: ProviderPlan) -> None:
        """Take new call limits, restart policy ... on every replica (``resize`` changes their number)."""
        self.plan = plan.with_policy(replicas=len(self.members))
        for member in self.members:
            member.update_policy(dataclasses.replace(plan, replica=member.plan.replica))

    # -- states every replica takes ------------------------------------------------------------------------

    def fail(self, why: str | None = None) -> None:
        """Mark every replica ``failed`` (saying ``why``)."""
        for member in self.members:
            member.fail(why)

    def expect(self) -> None:
        """A reload is bringing this provider up."""
        for member in self.members:
            member.expect()

    def idle(self) -> None:
        """Every replica waits, ``idle``, for the provider's first call."""
        for member in self.members:
            member.idle()

    def open(self) -> None:
        """The host starts (again)."""
        for member in self.members:
            member.open()

    def close(self) -> None:
        """The host stops: nothing starts or restarts from now on."""
        for member in self.members:
            member.close()

    def kill(self) -> None:
        """SIGKILL every replica's workers now."""
        for member in self.members:
            member.kill()

    # -- starting and stopping every replica, together -----------------------------------------------------

    async def start(self) -> None:
        """Start every replica (together, its env built first if it is not yet); the first failure is raised."""
        if self.env is None:
            await self.build()
        await self._each(Replica.start)

    async def start_added(self) -> None:
        """Start every replica of a provider a reload added."""
        await self._each(Replica.start_added)

    async def start_if_idle(self) -> None:
        """Start every ``idle`` replica (a lazy provider's first call)."""
        await self._each(Replica.start_if_idle)

    async def wake(self, timeout: float | None) -> None:
        """Start a lazy provider for a call, waiting ``timeout`` seconds at most."""
        await self.members[0].wake(timeout)

    async def sleep(self, why: str) -> bool:
        """Stop an unused provider's workers (it becomes ``idle``); nothing happens if it has calls in flight."""
        if self.busy():
            return False
        slept = await asyncio.gather(*(m.sleep(why) for m in self.members))
        return any(slept)

    async def start_by_operator(self) -> None:
        """Start every replica that is down."""
        await self._each(Replica.start_by_operator)

    async def stop(self, deadline: float | None = None, *, why: str = "stopped by request") -> None:
        """Stop every replica (``Replica.stop``)."""
        await self._each(lambda m: m.stop(deadline, why=why))

    async def _each(self, operation: Callable[[Replica], Awaitable[Any]]) -> None:
        results = await asyncio.gather(*(operation(m) for m in self.members), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- one replica at a time, so that the others serve ---------------------------------------------------

    async def replace(self, plan: ProviderPlan, env: Env | None) -> None:
        """Serve ``plan`` from now on, one replica after the other (each rolling)."""
        for member in self.members:
            await member.replace(dataclasses.replace(plan, replica=member.plan.replica), env)
            if member is self.members[0]:  # the provider serves the new plan from its first replica on
                self.plan, self.env = plan.with_policy(replicas=len(self.members)), env

    async def rearm(self) -> None:
        """Restart every replica, one after the other."""
        for member in self.members:
            await member.rearm()

    async def resize(self, replicas: int) -> None:
        """Run ``replicas`` replicas: new ones are started (and serve once ready), surplus ones stop after
        finishing their calls. ``ProviderStartError`` if a new one cannot start (it is dropped again)."""
        while len(self.members) < replicas:
            member = self._member(len(self.members))
            member.prepared(member.plan, self.env)
            try:
                await member.start()
            except HostelError:
                await member.stop(time.monotonic())
                raise
            self.members.append(member)
        while len(self.members) > replicas:
            await self.members.pop().stop()
        self.plan = self.plan.with_policy(replicas=replicas)
