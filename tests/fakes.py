"""In-process fakes for the supervisor's seam: a launcher, its workers and their channels.

The supervisor types against ``WorkerLauncher``, ``WorkerHandle`` and ``Channel``; these stand in for all
three so its policy (restarts, probes, limits, stops) is tested in milliseconds. Each ``FakeWorker`` is
told what to do: die, stop answering, grow, ignore a stop. Real processes stay the integration layer
(tests/fake_worker.py, the provider venvs).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostel.config import Launcher
from hostel.config.plan import ProviderPlan, load_plan
from hostel.envs import Env, EnvManager
from hostel.errors import HostelError, ProviderStartError, ProviderUnavailableError
from hostel.launch import Launchers
from hostel.launch.base import ExitInfo, LaunchContext, WorkerLauncher
from hostel.supervise.context import SupervisorContext
from hostel.supervise.supervisor import Supervisor
from hostel_sdk._handshake import PROTOCOL_VERSION, Handshake
from tests.conftest import make_config, provider_spec

STACKS = 'Thread 0x0001 (most recent call first):\n  File "provider.py", line 7 in busy'


@dataclass
class Behaviour:
    """How the next workers of a launcher behave (tests change it between restarts)."""

    fail_start: bool = False
    answers_health: bool = True
    blocked_s: float | None = None  # what its watchdog answers when the probe misses (None: nothing)
    honours_shutdown: bool = True
    ignores_sigterm: bool = False
    rss_bytes: int | None = 10 * 2**20
    start_gate: asyncio.Event | None = None  # a start waits for it (to watch what happens meanwhile)
    waiting_for: str | None = None  # what a start held by start_gate says it waits for (WorkerHandle.waiting_for)
    methods: dict[str, Callable[..., Awaitable[Any]]] = field(default_factory=dict)


class FakeWorker:
    """A ``WorkerHandle`` whose life the test controls."""

    _pids = itertools.count(1000)

    def __init__(self, plan: ProviderPlan, behaviour: Behaviour, generation: int) -> None:
        self.plan = plan
        self.behaviour = behaviour
        self.generation = generation
        self.token = ""
        self.kill_reason: str | None = None
        self.server_token: str | None = None
        self.tls: dict[str, str] | None = None
        self.waiting_for: str | None = None
        self._pid = next(self._pids)
        self._exit: asyncio.Future[ExitInfo] = asyncio.get_running_loop().create_future()
        self.spawned = False
        self.started = False
        self.signals: list[int] = []
        self.stderr: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exit_info(self) -> ExitInfo | None:
        return self._exit.result() if self._exit.done() else None

    def die(self, *, code: int | None = None, sig: int | None = None) -> None:
        """End the worker now, as a crash or a kill would."""
        if not self._exit.done():
            self._exit.set_result(ExitInfo(code, sig))

    async def spawn(self) -> None:
        self.spawned = True

    async def start(self, timeout: float, *, token: str = "") -> Handshake:
        self.token = token
        if self.behaviour.start_gate is not None:
            self.waiting_for = self.behaviour.waiting_for
            await self.behaviour.start_gate.wait()
            self.waiting_for = None
        if self.behaviour.fail_start:
            self.die(code=1)
            raise ProviderStartError("factory refused", provider_id=self.plan.provider_id, stage="factory")
        self.started = True
        return Handshake(PROTOCOL_VERSION, "unix", f"/fake/{self._pid}.sock", self._pid, "fake")

    async def wait(self) -> ExitInfo:
        return await asyncio.shield(self._exit)

    def signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and not self.behaviour.ignores_sigterm):
            self.die(sig=sig)

    def kill_for(self, reason: str) -> None:
        if self.exit_info is None and self.kill_reason is None:
            self.kill_reason = reason
            self.signal(signal.SIGKILL)

    async def dump_stacks(self) -> str:
        return STACKS

    async def loop_blocked_s(self, timeout: float) -> float | None:
        return self.behaviour.blocked_s

    def rss_bytes(self) -> int | None:
        return self.behaviour.rss_bytes

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr[-lines:])

    async def kill(self) -> ExitInfo | None:
        self.signal(signal.SIGKILL)
        return await self.wait()

    async def terminate(self, grace_s: float) -> ExitInfo | None:
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), grace_s)
        except TimeoutError:
            await self.kill()
        return self.exit_info

    async def close(self) -> None:
        pass


class FakeChannel:
    """A ``Channel`` to a ``FakeWorker``: calls run the behaviour's methods, racing the worker's death."""

    def __init__(self, worker: FakeWorker, explain: Callable[[HostelError], Awaitable[HostelError]]) -> None:
        self.worker = worker
        self.target = f"unix:/fake/{worker.pid}.sock"
        self._explain = explain
        self.shutdowns: list[float] = []
        self.health_checks = 0

    async def _unavailable(self) -> HostelError:
        return await self._explain(
            ProviderUnavailableError("the worker is not reachable", provider_id=self.worker.plan.provider_id)
        )

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        worker = self.worker
        if worker.exit_info is not None:
            raise await self._unavailable()
        running = asyncio.ensure_future(worker.behaviour.methods[method](*args, **kwargs))
        death = asyncio.ensure_future(worker.wait())
        try:
            done, _ = await asyncio.wait({running, death}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            death.cancel()
        if running in done:
            return running.result()
        running.cancel()
        raise await self._unavailable()

    async def check_health(self, timeout: float) -> bool:
        self.health_checks += 1
        return self.worker.exit_info is None and self.worker.behaviour.answers_health

    async def request_shutdown(self, grace_s: float, timeout: float) -> None:
        self.shutdowns.append(grace_s)
        if self.worker.behaviour.honours_shutdown:
            self.worker.die(code=0)

    async def close(self, grace: float | None = None) -> None:
        pass


class FakeLauncher:
    """A ``WorkerLauncher`` of ``FakeWorker``s; ``made`` holds every worker in the order it was made."""

    uses_env = False

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.made: list[FakeWorker] = []
        self.channels: list[FakeChannel] = []

    def new_worker(self, plan: ProviderPlan, env: Env | None, generation: int) -> FakeWorker:
        worker = FakeWorker(plan, self.behaviour, generation)
        self.made.append(worker)
        return worker

    def connect(
        self,
        worker: Any,
        handshake: Handshake,
        *,
        provider_id: str,
        explain: Callable[[HostelError], Awaitable[HostelError]],
    ) -> FakeChannel:
        channel = FakeChannel(worker, explain)
        self.channels.append(channel)
        return channel

    async def close(self) -> None:
        pass


class OneLauncher(Launchers):
    """``Launchers`` that hand every provider the same launcher, whatever its plan names."""

    def __init__(self, launcher: WorkerLauncher, context: LaunchContext) -> None:
        super().__init__(context)
        self._launcher = launcher

    def get(self, kind: Launcher) -> WorkerLauncher:
        return self._launcher


FAST = {
    "restart": {"max_restarts": 3, "window_s": 60, "backoff_initial_s": 0.01, "backoff_max_s": 0.04},
    "probe_interval_s": 0.01,
    "probe_timeout_s": 0.01,
    "probe_failures": 3,
    "stop_grace_s": 0.2,
}


async def until(predicate: Any, timeout: float = 10) -> None:
    """Wait for ``predicate()`` to hold, failing the test after ``timeout`` seconds: the tests' one async polling
    helper (``tests.conftest.wait_until`` is the blocking one, for tests that run a server process)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def fake_supervisor(
    tmp_path: Path,
    launcher: FakeLauncher,
    *,
    callbacks: Any = None,
    entries: Mapping[str, Mapping[str, Any]] | None = None,
    **hostel: Any,
) -> Supervisor:
    """A supervisor of two fake providers: "t" (tool_runtime) depends on "dep" (inference, 50 MB limit);
    ``entries`` adds keys to their run-config entries, ``hostel`` to the hostel: settings."""
    specs = {
        "inline/tool_runtime/testprov": provider_spec(api_dependencies=["inference"]),  # "t" depends on "dep"
        "inline/inference/testprov": provider_spec(),
    }
    extra = entries or {}
    providers = {
        "inference": [
            {
                "provider_id": "dep",
                "provider_type": "inline::testprov",
                "limits": {"memory_mb": 50},
                **extra.get("dep", {}),
            }
        ],
        "tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", **extra.get("t", {})}],
    }
    plan = load_plan(make_config(tmp_path, specs=specs, providers=providers, hostel={**FAST, **hostel}))
    context = SupervisorContext(plan.settings, EnvManager(tmp_path / "home"), tmp_path, callbacks=callbacks)
    return Supervisor(plan.providers, context, OneLauncher(launcher, context.launch_context()))


@contextlib.asynccontextmanager
async def supervising(
    tmp_path: Path, behaviour: Behaviour | None = None, **options: Any
) -> AsyncIterator[tuple[Supervisor, FakeLauncher]]:
    """``fake_supervisor`` started, with its launcher; stopped on the way out."""
    launcher = FakeLauncher(behaviour)
    supervisor = fake_supervisor(tmp_path, launcher, **options)
    await supervisor.start()
    try:
        yield supervisor, launcher
    finally:
        await supervisor.stop()
