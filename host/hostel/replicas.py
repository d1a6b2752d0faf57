"""Replicas: several workers behind one provider id (``replicas: N`` in its entry), docs/supervision.md.

A ``ReplicatedSlot`` is replica 0 of its provider, a ``ProviderSlot`` like any other, and holds the other
replicas as ``ProviderSlot``s of their own: each has its own worker, restarts, probes, memory watchdog and
call limits, so one crashing replica fails only its own calls and restarts while the others serve. A call
goes to the least-loaded replica that serves (a stream stays on the worker that returned it); operations on
the provider apply to every replica, and those that could fail calls (restart, replace) go one replica at a
time. With ``replicas: 1`` it is exactly a ``ProviderSlot``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.errors import HostelError
from hostel.slot import ProviderSlot, ProviderStatus, State

# A provider's state from its replicas': the best one any replica is in (State lists them best first).
_STATE_ORDER: tuple[State, ...] = typing.get_args(State)


class ReplicatedSlot(ProviderSlot):
    """A provider and its replicas (``plan.replicas``); see the module's docstring."""

    def __init__(self, plan: ProviderPlan, *args: Any, **kwargs: Any) -> None:
        super().__init__(plan, *args, **kwargs)
        self._args, self._kwargs = args, kwargs
        self.others: list[ProviderSlot] = [self._member(plan, i) for i in range(1, plan.replicas)]

    def _member(self, plan: ProviderPlan, index: int) -> ProviderSlot:
        return ProviderSlot(dataclasses.replace(plan, replica=index), *self._args, **self._kwargs)

    @property
    def members(self) -> list[ProviderSlot]:
        """Every replica, this slot first."""
        return [self, *self.others]

    # -- calls ---------------------------------------------------------------------------------------------

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Forward one call to the least-loaded replica that serves (the first one waits for a start if none
        does)."""
        if not self.others:
            return await super().call(method, args, kwargs, timeout=timeout, provider_data=provider_data)
        serving = [m for m in self.members if m.state in ("ready", "replacing") and not m.stopping]
        chosen = min(serving, key=lambda m: m.admission.load) if serving else self
        if chosen is self:
            return await super().call(method, args, kwargs, timeout=timeout, provider_data=provider_data)
        return await chosen.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)

    def busy(self) -> bool:
        """Whether any replica has calls in flight."""
        return super().busy() or any(m.busy() for m in self.others)

    # -- status --------------------------------------------------------------------------------------------

    def status(self, *, usage: bool = False) -> ProviderStatus:
        """The provider's status: its best replica's state, its first replica's pid, every replica's restarts
        and figures added up, and each replica's own status in ``replicas``."""
        own = super().status(usage=usage)
        if not self.others:
            return own
        each = [own, *(m.status(usage=usage) for m in self.others)]

        def total(name: str) -> Any:
            values = [getattr(s, name) for s in each if getattr(s, name) is not None]
            return sum(values) if values else None

        return dataclasses.replace(
            own,
            state=min((s.state for s in each), key=_STATE_ORDER.index),
            restarts=sum(s.restarts for s in each),
            last_exit=next((s.last_exit for s in each if s.last_exit), None),
            rss_bytes=total("rss_bytes"),
            pss_bytes=total("pss_bytes"),
            cpu_seconds=total("cpu_seconds"),
            replicas=tuple(dataclasses.replace(s, replica=i) for i, s in enumerate(each)),
        )

    # -- lifecycle: every replica --------------------------------------------------------------------------

    async def build(self) -> Env | None:
        """Build (or reuse) the env once; every replica runs from it."""
        env = await super().build()
        for member in self.others:
            member.env = env
        return env

    def fail(self, why: str) -> None:
        """Mark every replica ``failed``."""
        for member in self.members:
            ProviderSlot.fail(member, why)

    def expect(self) -> None:
        """A reload is bringing this provider up."""
        for member in self.members:
            ProviderSlot.expect(member)

    def open(self) -> None:
        """The host starts (again)."""
        for member in self.members:
            ProviderSlot.open(member)

    def close(self) -> None:
        """The host stops."""
        for member in self.members:
            ProviderSlot.close(member)

    def begin_stop(self) -> None:
        """Nothing restarts from now on."""
        for member in self.members:
            ProviderSlot.begin_stop(member)

    def kill(self) -> None:
        """SIGKILL every replica's workers now."""
        for member in self.members:
            ProviderSlot.kill(member)

    async def start(self) -> None:
        """Start every replica (together); the first failure is raised."""
        await self._each(ProviderSlot.start)

    async def start_added(self) -> None:
        """Start every replica of a provider a reload added."""
        await self._each(ProviderSlot.start_added)

    async def start_by_operator(self) -> None:
        """Start every replica that is down."""
        await self._each(ProviderSlot.start_by_operator)

    async def stop_by_operator(self) -> None:
        """Stop every replica until started again."""
        await self._each(ProviderSlot.stop_by_operator)

    async def shutdown(self, deadline: float) -> None:
        """Ask every replica's worker to stop."""
        await self._each(lambda m: ProviderSlot.shutdown(m, deadline))

    async def force_stop(self) -> None:
        """Stop whatever of every replica still runs."""
        await self._each(ProviderSlot.force_stop)

    async def _each(self, operation: Any) -> None:
        results = await asyncio.gather(*(operation(m) for m in self.members), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- lifecycle: one replica at a time, so that the others serve ----------------------------------------

    async def replace(self, plan: ProviderPlan, env: Env | None) -> None:
        """Serve ``plan`` from now on, one replica after the other (each rolling)."""
        for member in self.members:
            await ProviderSlot.replace(member, dataclasses.replace(plan, replica=member.plan.replica), env)

    async def rearm(self) -> None:
        """Restart every replica, one after the other."""
        for member in self.members:
            await ProviderSlot.rearm(member)

    def update_policy(self, plan: ProviderPlan) -> None:
        """Take new call limits, restart policy ... on every replica (``resize`` changes their number)."""
        ProviderSlot.update_policy(self, dataclasses.replace(plan, replicas=len(self.members)))
        for member in self.others:
            ProviderSlot.update_policy(member, dataclasses.replace(plan, replica=member.plan.replica))

    async def resize(self, replicas: int) -> None:
        """Run ``replicas`` replicas: new ones are started (and serve once ready), surplus ones stop after
        finishing their calls. ``ProviderStartError`` if a new one cannot start (it is dropped again)."""
        while len(self.members) < replicas:
            member = self._member(self.plan, len(self.members))
            member.env = self.env
            try:
                await member.start()
            except HostelError:
                await member.force_stop()
                raise
            self.others.append(member)
        while len(self.members) > replicas:
            surplus = self.others.pop()
            await surplus.stop_by_operator()
            await surplus.force_stop()
        self.plan = dataclasses.replace(self.plan, replicas=replicas)
