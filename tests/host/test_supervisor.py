"""The supervisor against the fake worker's fault scenarios: crashes, signals, crash loops, hangs, stops."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hostel.config.plan import ProviderPlan, load_plan
from hostel.envs import Env, EnvManager
from hostel.errors import ProviderCrashedError, ProviderUnavailableError
from hostel.launch.base import LaunchContext, WorkerHandle, socket_path
from hostel.launch.process import ProcessLauncher, WorkerProcess
from hostel.supervise.context import SupervisorContext
from hostel.supervise.provider import Provider
from hostel.supervise.supervisor import Supervisor
from tests.conftest import REPO, make_config
from tests.fakes import OneLauncher, until

FAKE = REPO / "tests" / "fake_worker.py"


class FakeWorkerLauncher(ProcessLauncher):
    """Real worker processes, but the scenario-driven fake worker instead of a provider venv's."""

    uses_env = False

    def __init__(self, context: LaunchContext, scenario: str) -> None:
        super().__init__(context)
        self._scenario = scenario

    def new_worker(self, plan: ProviderPlan, env: Env | None, generation: int) -> WorkerHandle:
        context = self._context
        return WorkerProcess(
            plan,
            Path(sys.executable),
            socket_path(context.socket_dir, plan, generation),
            log_level=context.log_level,
            max_message_bytes=self.max_message_bytes,
            grace_s=context.settings.stop_grace_s,
            command=[sys.executable, str(FAKE), self._scenario],
        )


async def _supervised(tmp_path: Path, scenario: str = "ok", **hostel: Any) -> Supervisor:
    settings = {"restart": {"max_restarts": 3, "window_s": 60, "backoff_initial_s": 0.05, "backoff_max_s": 1}, **hostel}
    plan = load_plan(make_config(tmp_path, hostel=settings))
    context = SupervisorContext(
        plan.settings, EnvManager(tmp_path / "unused-home"), Path(tempfile.mkdtemp(prefix="hostel-s-"))
    )
    launch = context.launch_context()
    supervisor = Supervisor(plan.providers, context, OneLauncher(FakeWorkerLauncher(launch, scenario), launch))
    await supervisor.start()
    return supervisor


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    started = await _supervised(tmp_path)
    yield started
    await started.stop()


def _slot(supervisor: Supervisor) -> Provider:
    return supervisor.providers["t"]


async def _call(slot: Provider, method: str, timeout: float = 30, **kwargs: Any) -> Any:
    return await slot.call(method, (), kwargs, timeout=timeout, provider_data=None)


async def test_crash_fails_the_call_with_exit_code_and_stderr_then_restarts(supervisor: Supervisor) -> None:
    slot = _slot(supervisor)
    first_pid = await _call(slot, "pid")
    with pytest.raises(ProviderCrashedError) as exc:
        await _call(slot, "crash", code=3)
    assert exc.value.exit_code == 3 and exc.value.signal is None and exc.value.pid == first_pid
    assert "crashing on purpose" in exc.value.stderr_tail and exc.value.provider_id == "t"
    assert "not retried" in str(exc.value)
    await until(lambda: slot.state == "ready")
    assert await _call(slot, "pid") != first_pid
    status = slot.status()
    assert status.restarts == 1 and status.last_exit == "exited with code 3"


async def test_a_worker_without_sessions_is_called_over_call_unary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hostel.transport.channel")
    supervisor = await _supervised(tmp_path, "no-session")
    try:
        slot = _slot(supervisor)
        delays = [0.2, 0.0, 0.1]  # all sent on the session before its UNIMPLEMENTED arrives, then resent
        assert await asyncio.gather(*(_call(slot, "sleep", seconds=d) for d in delays)) == delays
        assert await _call(slot, "ping") == "pong"
        assert "does not serve Worker.Session; using CallUnary" in caplog.text
    finally:
        await supervisor.stop()


async def test_death_by_signal_is_reported_with_the_signal(supervisor: Supervisor) -> None:
    slot = _slot(supervisor)
    with pytest.raises(ProviderCrashedError) as exc:
        await _call(slot, "die_by_signal", sig=9)
    assert exc.value.signal == 9 and exc.value.exit_code is None and "killed by SIGKILL" in str(exc.value)


async def test_items_a_stream_delivered_stay_delivered(supervisor: Supervisor) -> None:
    got = []
    with pytest.raises(ProviderCrashedError) as exc:
        async for item in await _call(_slot(supervisor), "stream_then_crash", before=3):
            got.append(item)
    assert got == [0, 1, 2] and exc.value.exit_code == 4


async def test_calls_during_a_restart_wait_for_it(tmp_path: Path) -> None:
    supervisor = await _supervised(
        tmp_path, restart={"max_restarts": 3, "window_s": 60, "backoff_initial_s": 0.5, "backoff_max_s": 1}
    )
    try:
        slot = _slot(supervisor)
        with pytest.raises(ProviderCrashedError):
            await _call(slot, "crash")
        assert slot.state == "restarting"
        assert await _call(slot, "ping") == "pong"  # waited for the restarted worker, within its deadline
        with pytest.raises(ProviderCrashedError):
            await _call(slot, "crash")
        with pytest.raises(ProviderUnavailableError, match="still restarting"):
            await _call(slot, "ping", timeout=0.1)
    finally:
        await supervisor.stop()


async def test_crash_loop_marks_the_provider_failed_and_calls_fail_fast(tmp_path: Path) -> None:
    supervisor = await _supervised(
        tmp_path, restart={"max_restarts": 2, "window_s": 60, "backoff_initial_s": 0, "backoff_max_s": 0}
    )
    try:
        slot = _slot(supervisor)
        for _ in range(3):
            await until(lambda: slot.state in ("ready", "failed"))
            with pytest.raises(ProviderCrashedError):
                await _call(slot, "crash")
        await until(lambda: slot.state == "failed")
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError, match=r"is failed .*re-arm it with `hostel restart t`"):
            await _call(slot, "ping")
        assert time.monotonic() - started < 1
        assert slot.status().restarts == 2
        await slot.rearm()  # a failed provider comes back without restarting the host
        assert slot.state == "ready" and await _call(slot, "ping") == "pong"
        assert slot.status().restarts == 3
        with pytest.raises(ProviderCrashedError):
            await _call(slot, "crash")
        await until(lambda: slot.state == "ready")  # its crash count started over: restarted, not failed
    finally:
        await supervisor.stop()


async def test_a_hung_worker_is_killed_by_the_liveness_probe_and_restarted(tmp_path: Path) -> None:
    supervisor = await _supervised(tmp_path, probe_interval_s=0.2, probe_timeout_s=0.2, probe_failures=2)
    try:
        slot = _slot(supervisor)
        first = await _call(slot, "pid")
        with pytest.raises(ProviderCrashedError) as exc:
            await _call(slot, "hang")
        assert "liveness probes" in str(exc.value) and exc.value.signal == 9
        await until(lambda: slot.state == "ready")
        assert await _call(slot, "pid") != first
        last_exit = slot.status().last_exit or ""
        assert "liveness probes" in last_exit
        # The worker's threads were asked for their stacks before the kill: "it hung" says where.
        assert "its threads were at:" in last_exit and "in hang" in last_exit and "fake_worker.py" in last_exit
    finally:
        await supervisor.stop()


async def test_stop_kills_a_worker_that_ignores_sigterm(tmp_path: Path) -> None:
    supervisor = await _supervised(tmp_path, "ignore-sigterm", stop_grace_s=0.3)
    slot = _slot(supervisor)
    worker = slot.worker
    assert worker is not None
    await supervisor.stop()
    assert worker.exit_info is not None and worker.exit_info.signal == 9
    assert slot.state == "stopped"


async def test_a_killed_worker_is_seen_dead_while_a_forked_child_holds_its_pipes(supervisor: Supervisor) -> None:
    slot = _slot(supervisor)
    first = await _call(slot, "pid")
    holder = await _call(slot, "fork_holding_pipes")
    os.kill(first, signal.SIGKILL)
    await until(lambda: slot.state != "ready" or slot.status().pid != first)
    await until(lambda: slot.state == "ready")
    assert await _call(slot, "pid") != first and slot.status().restarts == 1
    await until(lambda: not _alive(holder))  # what the dead worker forked went with it


async def test_one_huge_stderr_line_is_cut_and_the_worker_carries_on(supervisor: Supervisor) -> None:
    slot = _slot(supervisor)
    assert await _call(slot, "huge_stderr_line", megabytes=10) == "written"
    assert await _call(slot, "ping") == "pong"
    assert slot.worker is not None
    await until(lambda: "after the huge line" in slot.worker.stderr_tail() if slot.worker else False)
    tail = slot.worker.stderr_tail()
    assert f"[hostel: {(10 << 20) - 16384} more bytes cut]" in tail and len(tail) < 64 * 1024


async def test_stop_is_bounded_and_restarts_nothing_whatever_the_workers_do(tmp_path: Path) -> None:
    supervisor = await _supervised(tmp_path, "ignore-sigterm", stop_grace_s=0.5)
    slot = _slot(supervisor)
    worker = slot.worker
    assert worker is not None
    hung = asyncio.create_task(_call(slot, "hang"))  # its event loop is blocked: no Shutdown RPC is answered
    await asyncio.sleep(0.3)
    stopping = asyncio.create_task(supervisor.stop())
    await asyncio.sleep(0)
    os.kill(worker.pid or 0, signal.SIGSEGV)  # SIGSEGV is not ignored: it dies while the stop is under way
    await asyncio.wait_for(stopping, 20)
    with pytest.raises((ProviderCrashedError, ProviderUnavailableError)):
        await hung
    assert slot.state == "stopped" and slot.restarts == 0 and slot.worker is None  # released, none started


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_exit_before_handshake_leaves_nothing_running(tmp_path: Path) -> None:
    from hostel.errors import ProviderStartError

    with pytest.raises(ProviderStartError) as exc:
        await _supervised(tmp_path, "exit-before-handshake")
    assert exc.value.stage == "handshake" and "exited with code 3" in str(exc.value)


async def test_a_standby_worker_takes_over_a_crash_and_is_replaced(tmp_path: Path) -> None:
    supervisor = await _supervised(tmp_path, standby_workers=True)
    try:
        slot = _slot(supervisor)
        starter = slot.members[0]._starter
        await until(lambda: starter.standby is not None)
        standby = starter.standby
        assert standby is not None and standby.pid is not None
        with pytest.raises(ProviderCrashedError):
            await _call(slot, "crash")
        await until(lambda: slot.state == "ready")
        assert await _call(slot, "pid") == standby.pid  # the spare became the worker
        await until(lambda: starter.standby is not None and starter.standby is not standby)
    finally:
        await supervisor.stop()
    assert standby.exit_info is not None and starter.standby is None


async def test_the_probe_of_a_crashed_worker_ends_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    supervisor = await _supervised(tmp_path, probe_interval_s=0.05, probe_timeout_s=1)
    try:
        slot = _slot(supervisor)
        for _ in range(3):
            await until(lambda: slot.state == "ready")
            with pytest.raises(ProviderCrashedError):
                await _call(slot, "crash")
        await until(lambda: slot.state == "ready")
        await asyncio.sleep(0.3)  # old probes wake up after their workers died
        assert len([t for t in slot.members[0]._tasks if not t.done()]) == 2  # the live worker's watch and probe only
    finally:
        await supervisor.stop()
    assert "Task exception was never retrieved" not in caplog.text and "UsageError" not in caplog.text
