"""How a replica's workers come to be: ``Starter``.

A worker is started from a standby if one waits (``standby_workers``: spawned ahead, so a restart skips
interpreter start-up and imports), else made new; each is started with a callback token of its own,
connected and primed (``running.start_worker``). While the host stops nothing starts, and starts under way
are cancelled (what they started is stopped).
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.errors import HostelError, ProviderUnavailableError
from hostel.launch import Launchers
from hostel.launch.base import WorkerHandle
from hostel.supervise.context import SupervisorContext
from hostel.supervise.running import RunningWorker, discard, start_worker

# Turns a transport failure on a worker into a better error (a crash, with its exit and stderr tail).
Explainer = Callable[[WorkerHandle, HostelError], Awaitable[HostelError]]


class Starter:
    """Starts the workers of one replica of ``provider_id``; see the module's docstring."""

    def __init__(self, provider_id: str, launchers: Launchers, context: SupervisorContext, explain: Explainer) -> None:
        self.provider_id = provider_id
        self.standby: WorkerHandle | None = None
        self.next: WorkerHandle | None = None  # a replacement being started (its pid is shown as ``new_pid``)
        self.starting: WorkerHandle | None = None  # the worker being started, if any
        self._launchers, self._context, self._explain = launchers, context, explain
        self._closed = False
        self._generation = 0
        self._launching: set[asyncio.Task[Any]] = set()

    @property
    def closed(self) -> bool:
        """Whether the host is stopping (nothing may start)."""
        return self._closed

    def open(self) -> None:
        """The host starts (again): workers may be started."""
        self._closed = False

    def close(self) -> None:
        """The host stops: nothing starts from now on, and starts under way are cancelled."""
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._launching):
            if task is not current:
                task.cancel()

    async def launch(
        self, plan: ProviderPlan, env: Env | None, *, use_standby: bool = False, replacement: bool = False
    ) -> RunningWorker:
        """A started worker for ``plan``, not yet serving (a waiting standby if ``use_standby``); on failure
        nothing is left running. A ``replacement`` is shown as ``next`` until ``replaced()``."""
        if self._closed:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} cannot start: the host is stopping", provider_id=self.provider_id
            )
        standby = await self._take_standby() if use_standby else None
        self._generation += 1
        launcher = self._launchers.get(plan.worker.launcher)
        worker = standby or launcher.new_worker(plan, env, self._generation)
        if replacement:
            self.next = worker
        task = asyncio.current_task()
        if task is not None:
            self._launching.add(task)
        self.starting = worker
        try:
            return await start_worker(
                launcher, worker, plan, self._context, explain=functools.partial(self._explain, worker),
                cancelled=lambda: self._closed,
            )  # fmt: skip
        finally:
            if self.starting is worker:
                self.starting = None
            if task is not None:
                self._launching.discard(task)

    def waiting_for(self) -> str | None:
        """What the worker being started waits for that may never come (``WorkerHandle.waiting_for``)."""
        return self.starting.waiting_for if self.starting is not None else None

    def replaced(self) -> None:
        """The replacement under way serves, or was given up."""
        self.next = None

    async def _take_standby(self) -> WorkerHandle | None:
        standby, self.standby = self.standby, None
        if standby is not None and standby.exit_info is not None:
            await standby.close()  # the standby itself died: start afresh
            return None
        return standby

    async def prepare_standby(self, plan: ProviderPlan, env: Env | None, unwanted: Callable[[], bool]) -> None:
        """``standby_workers``: spawn the next worker now (dropped if ``unwanted()`` once it is up)."""
        standby = self._launchers.get(plan.worker.launcher).new_worker(plan, env, self._generation + 1)
        try:
            await standby.spawn()
        except BaseException:
            await discard(standby, self._context.callbacks)
            raise
        if unwanted():
            await discard(standby, self._context.callbacks)
            return
        self.standby = standby

    async def drop_standby(self) -> None:
        """Kill the waiting standby, if any."""
        standby, self.standby = self.standby, None
        if standby is not None:
            await discard(standby, self._context.callbacks)

    def kill(self) -> None:
        """SIGKILL the standby and a replacement being started, now."""
        for worker in (self.standby, self.next):
            if worker is not None:
                worker.signal(signal.SIGKILL)
