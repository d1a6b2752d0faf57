"""The supervisor's policy against in-process fakes (tests/fakes.py): milliseconds each, no process spawned.

Restarts and their budget, calls through a restart, liveness and memory kills, stops, standby workers,
re-arming, tokens. tests/host/test_supervisor.py proves the same against real worker processes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hostel.config import RestartPolicy
from hostel.errors import CallTimeoutError, ProviderCrashedError, ProviderStartError, ProviderUnavailableError
from hostel.supervise.restarts import RestartBudget
from hostel.supervise.supervisor import Supervisor
from hostel.transport.callbacks import CallbackServer
from tests.fakes import Behaviour, FakeLauncher, fake_supervisor, until


def _supervisor(tmp_path: Path, launcher: FakeLauncher, *, callbacks: Any = None, **hostel: Any) -> Supervisor:
    return fake_supervisor(tmp_path, launcher, callbacks=callbacks, **hostel)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, FakeLauncher]]:
    async def pid() -> str:
        return "answered"

    launcher = FakeLauncher(Behaviour(methods={"pid": pid}))
    supervisor = _supervisor(tmp_path, launcher)
    await supervisor.start()
    yield supervisor, launcher
    await supervisor.stop()


def _worker_of(supervisor: Supervisor, provider_id: str) -> Any:
    return supervisor.providers[provider_id].worker


def test_the_budget_backs_off_exponentially_up_to_its_cap_then_gives_up() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=5, window_s=60, backoff_initial_s=0.1, backoff_max_s=0.5))
    assert [budget.crashed(t) for t in (0, 1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert budget.crashed(5) is None  # the sixth crash in the window: failed


def test_crashes_that_left_the_window_are_forgotten() -> None:
    budget = RestartBudget(RestartPolicy(max_restarts=1, window_s=10, backoff_initial_s=1, backoff_max_s=8))
    assert budget.crashed(0) == 1
    assert budget.crashed(100) == 1  # the first crash is 100 s old: this is a first crash again
    assert budget.crashed(101) is None
    budget.reset()
    assert budget.crashed(102) == 1


async def test_a_crash_is_restarted_and_counted(running: tuple[Supervisor, FakeLauncher]) -> None:
    supervisor, _ = running
    slot = supervisor.providers["t"]
    first = _worker_of(supervisor, "t")
    first.die(code=3)
    await until(lambda: slot.state == "ready" and slot.worker is not first)
    assert slot.restarts == 1 and slot.status().last_exit == "exited with code 3"


async def test_a_crash_loop_fails_the_provider_and_its_calls_fail_fast(
    running: tuple[Supervisor, FakeLauncher],
) -> None:
    supervisor, _ = running
    slot = supervisor.providers["t"]
    for _ in range(4):
        await until(lambda: slot.state in ("ready", "failed"))
        if slot.state == "failed":
            break
        _worker_of(supervisor, "t").die(code=1)
        await until(lambda: slot.state != "ready" or slot.worker is None or slot.worker.exit_info is None)
    await until(lambda: slot.state == "failed")
    with pytest.raises(ProviderUnavailableError, match="re-arm it"):
        await slot.call("pid", (), {}, timeout=5, provider_data=None)
    assert slot.restarts == 3


async def test_a_call_waits_through_a_restart_within_its_deadline(running: tuple[Supervisor, FakeLauncher]) -> None:
    supervisor, launcher = running
    slot = supervisor.providers["t"]
    launcher.behaviour.fail_start = True
    _worker_of(supervisor, "t").die(code=1)
    await until(lambda: slot.state == "restarting")
    waiting = asyncio.create_task(slot.call("pid", (), {}, timeout=5, provider_data=None))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # its provider is down: it waits rather than fails
    launcher.behaviour.fail_start = False
    assert await waiting == "answered"
    with pytest.raises((ProviderUnavailableError, CallTimeoutError)):
        launcher.behaviour.fail_start = True
        _worker_of(supervisor, "t").die(code=1)
        await until(lambda: slot.state != "ready")
        await slot.call("pid", (), {}, timeout=0.05, provider_data=None)


async def test_a_call_in_flight_on_a_crashing_worker_fails_with_the_crash(tmp_path: Path) -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    launcher = FakeLauncher(Behaviour(methods={"slow": slow}))
    supervisor = _supervisor(tmp_path, launcher)
    await supervisor.start()
    try:
        call = asyncio.create_task(supervisor.providers["t"].call("slow", (), {}, timeout=5, provider_data=None))
        await asyncio.sleep(0.02)
        _worker_of(supervisor, "t").die(sig=signal.SIGSEGV)
        with pytest.raises(ProviderCrashedError) as exc:
            await call
        assert exc.value.signal == signal.SIGSEGV
    finally:
        await supervisor.stop()


async def test_a_worker_that_stops_answering_is_killed_with_its_stacks(
    running: tuple[Supervisor, FakeLauncher],
) -> None:
    supervisor, launcher = running
    slot = supervisor.providers["t"]
    hung = _worker_of(supervisor, "t")
    launcher.behaviour.answers_health = False
    await until(lambda: hung.exit_info is not None)
    launcher.behaviour.answers_health = True
    assert hung.signals == [signal.SIGKILL] and "3 liveness probes" in hung.kill_reason
    assert "in busy" in hung.kill_reason  # where it hung
    await until(lambda: slot.state == "ready" and slot.worker is not hung)


async def test_a_busy_worker_whose_loop_is_blocked_but_whose_process_answers_is_not_killed(
    running: tuple[Supervisor, FakeLauncher],
) -> None:
    supervisor, launcher = running
    slot = supervisor.providers["t"]
    busy = _worker_of(supervisor, "t")
    launcher.behaviour.answers_health = False
    launcher.behaviour.blocked_s = 30.0  # its watchdog thread answers: the loop is blocked, the process is not
    probes = launcher.channels[-1].health_checks
    await until(lambda: launcher.channels[-1].health_checks >= probes + 6)  # twice the misses that would kill
    assert busy.exit_info is None and busy.signals == [] and slot.state == "ready"
    launcher.behaviour.answers_health, launcher.behaviour.blocked_s = True, None


async def test_max_blocked_s_bounds_how_long_a_worker_may_block_its_loop(tmp_path: Path) -> None:
    launcher = FakeLauncher(Behaviour(blocked_s=30.0))
    supervisor = _supervisor(tmp_path, launcher, max_blocked_s=20)
    await supervisor.start()
    try:
        blocked = _worker_of(supervisor, "t")
        launcher.behaviour.answers_health = False
        await until(lambda: blocked.exit_info is not None)
        assert "blocked its event loop for 30s (max_blocked_s=20)" in blocked.kill_reason
        assert "in busy" in blocked.kill_reason  # where it was stuck
    finally:
        launcher.behaviour.answers_health, launcher.behaviour.blocked_s = True, None
        await supervisor.stop()


async def test_a_worker_past_its_memory_limit_is_killed(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    supervisor = _supervisor(tmp_path, launcher)
    await supervisor.start()
    try:
        grown = _worker_of(supervisor, "dep")
        launcher.behaviour.rss_bytes = 60 * 2**20  # its limit is 50 MB
        await until(lambda: grown.exit_info is not None)
        assert "memory limit of 50 MB" in grown.kill_reason
        assert _worker_of(supervisor, "t").exit_info is None  # its neighbour is untouched
    finally:
        launcher.behaviour.rss_bytes = 1
        await supervisor.stop()


async def test_stopping_asks_dependents_first_and_restarts_nothing(running: tuple[Supervisor, FakeLauncher]) -> None:
    supervisor, launcher = running
    order: list[str] = []
    for channel in launcher.channels:
        original = channel.request_shutdown

        async def record(grace_s: float, timeout: float, channel: Any = channel, original: Any = original) -> None:
            order.append(channel.worker.plan.provider_id)
            await original(grace_s, timeout)

        channel.request_shutdown = record  # type: ignore[method-assign]
    made = len(launcher.made)
    await supervisor.stop()
    assert order == ["t", "dep"]  # the dependent first: it may still call its dependency while it stops
    assert len(launcher.made) == made and {s.state for s in supervisor.providers.values()} == {"stopped"}


async def test_a_worker_deaf_to_every_stop_is_killed_within_the_grace(tmp_path: Path) -> None:
    launcher = FakeLauncher(Behaviour(honours_shutdown=False, ignores_sigterm=True))
    supervisor = _supervisor(tmp_path, launcher)
    await supervisor.start()
    deaf = _worker_of(supervisor, "t")
    started = time.monotonic()
    await supervisor.stop()
    assert deaf.exit_info is not None and deaf.signals == [signal.SIGTERM, signal.SIGKILL]
    assert time.monotonic() - started < 5  # grace 0.2 s + 1 s for SIGTERM: bounded, not waited out forever


async def test_a_forced_stop_kills_everything_and_restarts_nothing(running: tuple[Supervisor, FakeLauncher]) -> None:
    supervisor, launcher = running
    made = len(launcher.made)
    supervisor.kill_all()
    await supervisor.stop()
    assert len(launcher.made) == made
    assert all(w.exit_info is not None for w in launcher.made)


async def test_a_standby_worker_is_spawned_ahead_and_takes_over(tmp_path: Path) -> None:
    launcher = FakeLauncher()
    supervisor = _supervisor(tmp_path, launcher, standby_workers=True)
    await supervisor.start()
    try:
        slot = supervisor.providers["t"]
        await until(lambda: slot.members[0]._starter.standby is not None)
        standby = slot.members[0]._starter.standby
        assert standby is not None and standby.spawned and not standby.started  # type: ignore[attr-defined]
        _worker_of(supervisor, "t").die(code=1)
        await until(lambda: slot.worker is standby and slot.state == "ready")
    finally:
        await supervisor.stop()


async def test_a_failed_provider_is_rearmed_with_a_fresh_budget(running: tuple[Supervisor, FakeLauncher]) -> None:
    supervisor, launcher = running
    slot = supervisor.providers["t"]
    launcher.behaviour.fail_start = True
    _worker_of(supervisor, "t").die(code=1)
    await until(lambda: slot.state == "failed")
    with pytest.raises(ProviderStartError):
        await slot.rearm()  # still failing: says why, stays failed
    assert slot.state == "failed"
    launcher.behaviour.fail_start = False
    await slot.rearm()
    assert slot.state == "ready" and await slot.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
    assert slot.members[0]._budget.crashes == 0


async def test_a_start_failure_leaves_no_worker_running(tmp_path: Path) -> None:
    launcher = FakeLauncher(Behaviour(fail_start=True))
    supervisor = _supervisor(tmp_path, launcher)
    with pytest.raises(ProviderStartError) as exc:
        await supervisor.start()
    assert exc.value.stage == "factory"
    assert all(w.exit_info is not None for w in launcher.made)


async def test_a_dead_workers_callback_token_is_revoked_at_once(tmp_path: Path) -> None:
    callbacks = CallbackServer(object(), tmp_path / "host.sock", max_message_bytes=2**20)  # type: ignore[arg-type]
    launcher = FakeLauncher()
    supervisor = _supervisor(tmp_path, launcher, callbacks=callbacks)
    await supervisor.start()
    try:
        worker = _worker_of(supervisor, "t")
        assert callbacks._known(worker.token.encode())
        worker.die(code=1)
        await until(lambda: not callbacks._known(worker.token.encode()))
        await until(lambda: supervisor.providers["t"].state == "ready")
        assert callbacks._known(_worker_of(supervisor, "t").token.encode())  # its successor has its own
    finally:
        await supervisor.stop()
