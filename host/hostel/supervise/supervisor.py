"""The provider set: builds the envs, starts the providers in dependency order (all or none), starts lazy
ones when first called (their dependencies first, within ``max_running``), stops them within one grace,
dependents first. Start and reload change the set only through its methods (``add``, ``remove``,
``reorder``, ``limit_running``). Each provider's own policy is its replicas' (``hostel.supervise.replica``);
what a reload changes is ``hostel.supervise.reload``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hostel.config.order import order_plans, starts_with_host
from hostel.config.plan import ProviderPlan, adopt_declared_spec
from hostel.errors import ProviderBusyError
from hostel.launch import Launchers
from hostel.supervise.admission import HostGate
from hostel.supervise.context import SupervisorContext
from hostel.supervise.provider import Provider
from hostel.supervise.status import RUNNING

logger = logging.getLogger(__name__)


class Supervisor:
    """The set of providers, started in dependency order and stopped in reverse."""

    def __init__(
        self, plans: Sequence[ProviderPlan], context: SupervisorContext, launchers: Launchers | None = None
    ) -> None:
        """``launchers``: where workers run (default: the launchers each plan names, made on first use)."""
        self.context = context
        self.launchers = launchers or Launchers(context.launch_context())
        self.gate = HostGate(context.settings.max_calls)
        self.max_running = context.settings.max_running
        self.providers: dict[str, Provider] = {p.provider_id: self._new(p) for p in plans}
        self.leaving: dict[Provider, asyncio.Task[None]] = {}  # removed by a reload, finishing their calls
        self._room = asyncio.Lock()
        self._reserved: set[str] = set()  # lazy providers making room to start

    def _new(self, plan: ProviderPlan) -> Provider:
        """One provider (and its replicas), sharing the host's call limit, woken through ``wake``."""
        return Provider(plan, self.context, self.launchers, self.gate, wake=self.wake)

    # -- the provider set, as a reload changes it ---------------------------------------------------------

    def add(self, plan: ProviderPlan) -> Provider:
        """A new provider: it is listed at once, and its calls wait for it while it is brought up."""
        self.providers[plan.provider_id] = provider = self._new(plan)
        provider.expect()
        return provider

    def remove(self, provider_id: str) -> None:
        """A removed provider: no new call reaches it (it is no longer listed); it stops once its calls end."""
        provider = self.providers.pop(provider_id)

        async def leave() -> None:
            try:
                await provider.stop(why="removed from the run config")
            finally:
                self.leaving.pop(provider, None)

        self.leaving[provider] = asyncio.create_task(leave())

    def reorder(self, provider_ids: Sequence[str]) -> None:
        """List the providers in this (start) order."""
        self.providers = {provider_id: self.providers[provider_id] for provider_id in provider_ids}

    def limit_running(self, max_running: int | None) -> None:
        """``hostel.max_running`` from now on."""
        self.max_running = max_running

    async def build(self, provider_ids: Sequence[str] | None = None) -> None:
        """Build the envs of the given providers (all by default; the env manager builds a few at a time)."""
        ids = list(provider_ids) if provider_ids is not None else list(self.providers)
        await _all_or_first_error([self.providers[i].build() for i in ids])

    async def start(self, provider_ids: Sequence[str] | None = None) -> None:
        """Start the given providers (all by default): each after its dependencies; all or none. Lazy ones
        (``start: lazy``) get their envs built and wait, ``idle``, for their first call."""
        ids = list(provider_ids) if provider_ids is not None else list(self.providers)
        for provider in self.providers.values():
            provider.open()
        try:
            ids = await self._build_and_resolve(ids)
            eager = set(starts_with_host([self.providers[i].plan for i in ids]))
            for provider_id in ids:
                if provider_id not in eager:
                    self.providers[provider_id].idle()
            await self.start_in_order([i for i in ids if i in eager])
        except BaseException:
            await self.stop()
            raise

    async def start_in_order(
        self, ids: Sequence[str], start: Callable[[Provider], Awaitable[None]] | None = None
    ) -> None:
        """Run ``start(provider)`` (default: ``provider.start()``) for each provider once its dependencies among
        ``ids`` have; the first failure cancels the rest and is raised."""
        started = {i: asyncio.Event() for i in ids}

        async def one(provider: Provider) -> None:
            for dep in _depends_on(provider.plan):
                if dep in started:
                    await started[dep].wait()
            await (start(provider) if start is not None else provider.start())
            started[provider.provider_id].set()

        await _all_or_first_error([one(self.providers[i]) for i in ids])

    async def wake(self, provider: Provider) -> None:
        """Start a lazy provider for its first call: its idle dependencies first, then itself, stopping the
        least recently used idle lazy worker if ``max_running`` workers already run."""
        for dep in provider.plan.policy.dependencies:
            dependency = self.providers.get(dep)
            if dependency is not None and dependency.state == "idle":
                await dependency.wake(None)
        async with self._room:
            await self._make_room(provider)
            self._reserved.add(provider.provider_id)
        try:
            await provider.start_if_idle()
        finally:
            self._reserved.discard(provider.provider_id)

    def running(self) -> int:
        """How many providers have a worker running or starting."""
        return len({i for i, s in self.providers.items() if s.state in RUNNING} | self._reserved)

    async def _make_room(self, provider: Provider) -> None:
        passed: set[str] = set()
        while self.max_running is not None and self.running() >= self.max_running:
            candidates = [
                s
                for s in self.providers.values()
                if s.plan.policy.start == "lazy" and s.state == "ready" and not s.busy()
                and s is not provider
                and s.provider_id not in (*passed, *self._reserved, *provider.plan.policy.dependencies)
            ]  # fmt: skip
            if not candidates:
                raise ProviderBusyError(
                    f"cannot start provider {provider.provider_id!r}: {self.running()} workers run, the limit "
                    f"(hostel.max_running), and none is a lazy one without calls in flight that it does not depend "
                    "on; try again shortly",
                    provider_id=provider.provider_id,
                )
            victim = min(candidates, key=lambda s: s.last_used)
            passed.add(victim.provider_id)
            await victim.sleep(f"to make room for {provider.provider_id} (hostel.max_running={self.max_running})")

    async def _build_and_resolve(self, ids: list[str]) -> list[str]:
        """Build envs; adopt the specs ``module:`` providers declare inside them; re-order; add new dependencies."""
        while True:
            await self.build(ids)
            adopted: dict[str, ProviderPlan] = {}
            for provider_id in ids:
                provider = self.providers[provider_id]
                metadata = provider.env.metadata if provider.env is not None else None
                found = adopt_declared_spec(provider.plan, metadata)
                if found is not None and not provider.spec_resolved:
                    adopted[provider_id] = found
            if not adopted:
                return ids
            ordered = self.order("<specs declared by packages>", list(self.providers), adopted)
            for plan in ordered:
                if plan.provider_id in adopted:
                    self.providers[plan.provider_id].adopt_spec(plan)
            wanted = set(ids)
            for provider_id in list(wanted):
                wanted.update(self.providers[provider_id].plan.policy.dependencies)
            ids = [p.provider_id for p in ordered if p.provider_id in wanted]

    def order(
        self, label: str, provider_ids: Sequence[str], pending: Mapping[str, ProviderPlan] | None = None
    ) -> list[ProviderPlan]:
        """Put the set in start order, ``provider_ids`` giving the order among independent ones: the plans in
        ``pending`` (a package's declared spec, a reload's new plan; not taken yet) stand in for their providers'
        own and are returned with their dependencies resolved; the other providers take the dependencies they now
        have. ``ConfigError`` (nothing changed) if they cannot be ordered."""
        pending = pending or {}
        effective = [pending.get(i, self.providers[i].plan) for i in provider_ids]
        ordered = order_plans(label, effective, self.context.external_apis)
        for plan in ordered:
            if plan.provider_id not in pending:
                provider, policy = self.providers[plan.provider_id], plan.policy
                deps = {"dependencies": policy.dependencies, "optional_dependencies": policy.optional_dependencies}
                provider.update_policy(provider.plan.with_policy(**deps))
        self.reorder([p.provider_id for p in ordered])
        return ordered

    def kill_all(self) -> None:
        """SIGKILL every worker now (a forced stop), restarting none; a ``stop`` then finishes at once."""
        for provider in (*self.providers.values(), *self.leaving):
            provider.kill()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop every worker within ``grace_s`` (default ``stop_grace_s``) plus a fixed kill allowance.

        Nothing is restarted from the first moment. Each worker is asked to stop once the providers that depend
        on it have stopped (they may still call it while they finish); when the grace is over, whatever still
        runs gets SIGTERM, then SIGKILL.
        """
        grace = self.context.settings.stop_grace_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace
        providers, leaving = list(self.providers.values()), list(self.leaving)
        for provider in (*providers, *leaving):
            provider.close()
        stopped = {provider.provider_id: asyncio.Event() for provider in providers}

        async def in_order(provider: Provider) -> None:
            dependents = [p for p in providers if provider.provider_id in _depends_on(p.plan)]
            with contextlib.suppress(asyncio.TimeoutError):
                waits = [stopped[p.provider_id].wait() for p in dependents]
                await asyncio.wait_for(asyncio.gather(*waits), max(deadline - time.monotonic(), 0))
            try:
                await provider.stop(deadline)
            finally:
                stopped[provider.provider_id].set()

        async def removed(provider: Provider) -> None:  # still finishing its calls: they end by the deadline too
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.leaving[provider]), max(deadline - time.monotonic(), 0))
            await provider.stop(deadline)

        await asyncio.gather(*(in_order(p) for p in providers), *(removed(p) for p in leaving if p in self.leaving))
        for task in list(self.leaving.values()):
            task.cancel()
        await asyncio.gather(*self.leaving.values(), return_exceptions=True)
        self.leaving.clear()
        await self.launchers.close()


def _depends_on(plan: ProviderPlan) -> tuple[str, ...]:
    """The providers ``plan`` depends on, required or optional."""
    return (*plan.policy.dependencies, *plan.policy.optional_dependencies)


async def _all_or_first_error(coros: Sequence[Any]) -> None:
    """Run concurrently; on the first failure cancel the rest and raise that failure itself."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        for task in asyncio.as_completed(tasks):
            await task
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
