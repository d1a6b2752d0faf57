"""Owns the provider workers: builds their envs, starts them in dependency order (all or none), starts lazy
ones when first called (their dependencies first, within ``max_running``), stops them within one grace,
dependents first. Each provider's own policy (restarts, probes, limits, replacing) is its
``hostel.slot.ProviderSlot``'s; what a reload changes is ``hostel.reload``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from hostel._admission import HostGate
from hostel.config.plan import ProviderPlan, adopt_declared_spec, order_plans, starts_with_host
from hostel.envs import BUILD_CONCURRENCY
from hostel.errors import ProviderBusyError
from hostel.launch import Launchers
from hostel.replicas import ReplicatedSlot
from hostel.slot import RUNNING, ProviderSlot, ProviderStatus, State, SupervisorContext

logger = logging.getLogger(__name__)

__all__ = ["ProviderSlot", "ProviderStatus", "State", "Supervisor", "SupervisorContext"]


class Supervisor:
    """The set of provider slots, started in dependency order and stopped in reverse."""

    def __init__(
        self, plans: Sequence[ProviderPlan], context: SupervisorContext, launchers: Launchers | None = None
    ) -> None:
        """``launchers``: where workers run (default: the launchers each plan names, made on first use)."""
        self.context = context
        self.launchers = launchers or Launchers(context.launch_context())
        self.gate = HostGate(context.settings.max_calls)
        self.max_running = context.settings.max_running
        self.slots: dict[str, ProviderSlot] = {p.provider_id: self.new_slot(p) for p in plans}
        self.leaving: dict[ProviderSlot, asyncio.Task[None]] = {}  # removed by a reload, finishing their calls
        self._room = asyncio.Lock()
        self._reserved: set[str] = set()  # lazy providers making room to start

    def new_slot(self, plan: ProviderPlan) -> ReplicatedSlot:
        """A slot for one provider (and its replicas), sharing the host's call limit, woken through ``wake``."""
        return ReplicatedSlot(plan, self.context, self.launchers, self.gate, wake=self.wake)

    # -- the provider set, as a reload changes it ---------------------------------------------------------

    def add(self, plan: ProviderPlan) -> ProviderSlot:
        """A new provider: its slot is listed at once, and its calls wait for it while it is brought up."""
        self.slots[plan.provider_id] = slot = self.new_slot(plan)
        slot.expect()
        return slot

    def remove(self, provider_id: str) -> None:
        """A removed provider: no new call reaches it (it is no longer listed); it stops once its calls end."""
        slot = self.slots.pop(provider_id)

        async def leave() -> None:
            try:
                await slot.stop_by_operator()
            finally:
                self.leaving.pop(slot, None)

        self.leaving[slot] = asyncio.create_task(leave())

    def reorder(self, provider_ids: Sequence[str]) -> None:
        """List the providers in this (start) order."""
        self.slots = {provider_id: self.slots[provider_id] for provider_id in provider_ids}

    def limit_running(self, max_running: int | None) -> None:
        """``hostel.max_running`` from now on."""
        self.max_running = max_running

    async def build(self, provider_ids: Sequence[str] | None = None, *, concurrency: int = BUILD_CONCURRENCY) -> None:
        """Build the envs of the given providers (all by default), a few at a time."""
        limit = asyncio.Semaphore(concurrency)

        async def one(slot: ProviderSlot) -> None:
            async with limit:
                await slot.build()

        ids = list(provider_ids) if provider_ids is not None else list(self.slots)
        await _all_or_first_error([one(self.slots[i]) for i in ids])

    async def start(self, provider_ids: Sequence[str] | None = None) -> None:
        """Start the given providers (all by default): each after its dependencies; all or none. Lazy ones
        (``start: lazy``) get their envs built and wait, ``idle``, for their first call."""
        ids = list(provider_ids) if provider_ids is not None else list(self.slots)
        for slot in self.slots.values():
            slot.open()
        try:
            ids = await self._build_and_resolve(ids)
            eager = set(starts_with_host([self.slots[i].plan for i in ids]))
            for provider_id in ids:
                if provider_id not in eager:
                    self.slots[provider_id].idle()
            await self.start_in_order([i for i in ids if i in eager])
        except BaseException:
            await self.stop()
            raise

    async def start_in_order(self, ids: Sequence[str], start: Any = None) -> None:
        """Run ``start(slot)`` (default: ``slot.start()``) for each provider once its dependencies among ``ids``
        have; the first failure cancels the rest and is raised."""
        started = {i: asyncio.Event() for i in ids}

        async def one(slot: ProviderSlot) -> None:
            for dep in (*slot.plan.dependencies, *slot.plan.optional_dependencies):
                if dep in started:
                    await started[dep].wait()
            await (start(slot) if start is not None else slot.start())
            started[slot.provider_id].set()

        await _all_or_first_error([one(self.slots[i]) for i in ids])

    async def wake(self, slot: ProviderSlot) -> None:
        """Start a lazy provider for its first call: its idle dependencies first, then itself, stopping the
        least recently used idle lazy worker if ``max_running`` workers already run."""
        for dep in slot.plan.dependencies:
            dependency = self.slots.get(dep)
            if dependency is not None and dependency.state == "idle":
                await dependency.wake(None)
        async with self._room:
            await self._make_room(slot)
            self._reserved.add(slot.provider_id)
        try:
            await slot.start_if_idle()
        finally:
            self._reserved.discard(slot.provider_id)

    def running(self) -> int:
        """How many providers have a worker running or starting."""
        return len({i for i, s in self.slots.items() if s.state in RUNNING} | self._reserved)

    async def _make_room(self, slot: ProviderSlot) -> None:
        passed: set[str] = set()
        while self.max_running is not None and self.running() >= self.max_running:
            candidates = [
                s
                for s in self.slots.values()
                if s.plan.start == "lazy" and s.state == "ready" and not s.busy()
                and s is not slot and s.provider_id not in (*passed, *self._reserved, *slot.plan.dependencies)
            ]  # fmt: skip
            if not candidates:
                raise ProviderBusyError(
                    f"cannot start provider {slot.provider_id!r}: {self.running()} workers run, the limit "
                    f"(hostel.max_running), and none is a lazy one without calls in flight that it does not depend "
                    "on; try again shortly",
                    provider_id=slot.provider_id,
                )
            victim = min(candidates, key=lambda s: s.last_used)
            passed.add(victim.provider_id)
            await victim.sleep(f"to make room for {slot.provider_id} (hostel.max_running={self.max_running})")

    async def _build_and_resolve(self, ids: list[str]) -> list[str]:
        """Build envs; adopt the specs ``module:`` providers declare inside them; re-order; add new dependencies."""
        while True:
            await self.build(ids)
            resolved = False
            for provider_id in ids:
                slot = self.slots[provider_id]
                adopted = adopt_declared_spec(slot.plan, slot.env.metadata if slot.env is not None else None)
                if adopted is not None and not slot.spec_resolved:
                    slot.adopt_spec(adopted)
                    resolved = True
            if not resolved:
                return ids
            ordered = order_plans(
                "<specs declared by packages>", [s.plan for s in self.slots.values()], self.context.external_apis
            )
            self.reorder([p.provider_id for p in ordered])
            for plan in ordered:
                self.slots[plan.provider_id].update_policy(plan)  # the dependencies the adopted specs give
            wanted = set(ids)
            for provider_id in list(wanted):
                wanted.update(self.slots[provider_id].plan.dependencies)
            ids = [p.provider_id for p in ordered if p.provider_id in wanted]

    def kill_all(self) -> None:
        """SIGKILL every worker now (a forced stop), restarting none; their slots then finish stopping at once."""
        for slot in (*self.slots.values(), *self.leaving):
            slot.kill()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop every worker within ``grace_s`` (default ``stop_grace_s``) plus a fixed kill allowance.

        Nothing is restarted from the first moment. Each worker is asked to stop once the providers that depend
        on it have stopped (they may still call it while they finish); when the grace is over, whatever still
        runs gets SIGTERM, then SIGKILL.
        """
        grace = self.context.settings.stop_grace_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace
        slots = list(self.slots.values())
        for slot in (*slots, *self.leaving):
            slot.close()
        stopped = {slot.provider_id: asyncio.Event() for slot in slots}

        async def graceful(slot: ProviderSlot) -> None:
            dependents = [s for s in slots if slot.provider_id in (*s.plan.dependencies, *s.plan.optional_dependencies)]
            with contextlib.suppress(asyncio.TimeoutError):
                waits = [stopped[s.provider_id].wait() for s in dependents]
                await asyncio.wait_for(asyncio.gather(*waits), max(deadline - time.monotonic(), 0))
            try:
                await slot.shutdown(deadline)
            finally:
                stopped[slot.provider_id].set()

        await asyncio.gather(*(graceful(slot) for slot in slots))
        for task in self.leaving.values():
            task.cancel()  # removed providers still finishing their calls: their workers are stopped below
        await asyncio.gather(*self.leaving.values(), return_exceptions=True)
        await asyncio.gather(*(slot.force_stop() for slot in (*slots, *self.leaving)))
        self.leaving.clear()
        await self.launchers.close()


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
