"""Live operations against in-process fakes (tests/fakes.py): rolling replacement, per-provider stop and start,
lazy start, idle stop and ``max_running``. tests/host/test_lifecycle.py proves them through ``hostel run``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hostel.errors import ProviderBusyError, ProviderStartError, ProviderUnavailableError
from tests.fakes import Behaviour, FakeLauncher, fake_supervisor, supervising, until

LAZY = {"dep": {"start": "lazy"}, "t": {"start": "lazy"}}


def _methods(release: asyncio.Event | None = None) -> dict[str, Any]:
    async def pid() -> str:
        return "answered"

    async def slow() -> str:
        assert release is not None
        await release.wait()
        return "finished"

    return {"pid": pid, "slow": slow}


async def test_a_rolling_replace_serves_every_call_and_drains_the_old_worker(tmp_path: Path) -> None:
    release = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods(release))) as (supervisor, launcher):
        slot = supervisor.providers["t"]
        old = slot.worker
        in_flight = asyncio.create_task(slot.call("slow", (), {}, timeout=5, provider_data=None))
        await until(slot.busy)
        new_plan = slot.plan.with_worker(config={"changed": True})
        await slot.replace(new_plan, None)
        assert slot.worker is not old and slot.state == "ready" and slot.plan.worker.config == {"changed": True}
        await asyncio.sleep(0.1)  # stop_grace_s is 0.2: without the drain it would be gone by now
        assert old is not None and old.exit_info is None and not in_flight.done()  # finishing the call it has
        assert await slot.call("pid", (), {}, timeout=5, provider_data=None) == "answered"  # on the new one
        release.set()
        assert await in_flight == "finished"  # the old worker's call completed
        await until(lambda: old.exit_info is not None)  # then it stopped
        assert launcher.channels[-1].worker is slot.worker


async def test_a_replacement_that_cannot_start_leaves_the_old_worker_serving(tmp_path: Path) -> None:
    async with supervising(tmp_path, Behaviour(methods=_methods())) as (supervisor, launcher):
        slot = supervisor.providers["t"]
        old = slot.worker
        launcher.behaviour.fail_start = True
        with pytest.raises(ProviderStartError, match="factory"):
            await slot.replace(slot.plan.with_worker(config={"bad": True}), None)
        assert slot.worker is old and slot.state == "ready" and slot.plan.worker.config != {"bad": True}
        assert await slot.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
        launcher.behaviour.fail_start = False
        launcher.behaviour.answers_health = False  # starts, but does not answer its first health check
        with pytest.raises(ProviderStartError, match="health"):
            await slot.replace(slot.plan.with_worker(config={"deaf": True}), None)
        assert slot.worker is old and launcher.made[-1].exit_info is not None  # the deaf one was stopped


async def test_the_status_shows_both_pids_while_replacing(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods())) as (supervisor, launcher):
        slot = supervisor.providers["t"]
        old_pid = slot.status().pid
        launcher.behaviour.start_gate = gate
        replacing = asyncio.create_task(slot.replace(slot.plan, None))
        await until(lambda: slot.state == "replacing" and slot.status().new_pid is not None)
        status = slot.status()
        assert status.pid == old_pid and status.new_pid not in (None, old_pid)
        assert await slot.call("pid", (), {}, timeout=5, provider_data=None) == "answered"  # the old one serves
        gate.set()
        await replacing
        assert slot.status().pid == status.new_pid and slot.status().new_pid is None


async def test_a_crash_of_the_old_worker_during_a_replace_starts_nothing_twice(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods())) as (supervisor, launcher):
        slot = supervisor.providers["t"]
        old = slot.worker
        assert old is not None
        launcher.behaviour.start_gate = gate
        replacing = asyncio.create_task(slot.replace(slot.plan, None))
        await until(lambda: slot.state == "replacing")
        made = len(launcher.made)
        old.die(code=1)  # type: ignore[attr-defined]
        await until(lambda: slot.state == "restarting")
        gate.set()
        await replacing
        await asyncio.sleep(0.1)  # the restart loop's backoff has passed: it must find the replacement serving
        assert slot.state == "ready" and len(launcher.made) == made and slot.worker is launcher.made[-1]


async def test_an_operator_stop_refuses_new_calls_finishes_old_ones_and_start_brings_it_back(tmp_path: Path) -> None:
    release = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods(release))) as (supervisor, _launcher):
        slot = supervisor.providers["t"]
        worker = slot.worker
        in_flight = asyncio.create_task(slot.call("slow", (), {}, timeout=5, provider_data=None))
        await until(slot.busy)
        stopping = asyncio.create_task(slot.stop())
        await until(lambda: slot.state == "stopped")
        with pytest.raises(ProviderUnavailableError, match=r"stopped by request.*hostel start t"):
            await slot.call("pid", (), {}, timeout=5, provider_data=None)
        release.set()
        assert await in_flight == "finished"
        await stopping
        assert worker is not None and worker.exit_info is not None and slot.status().pid is None
        await slot.start_by_operator()
        assert slot.state == "ready" and await slot.call("pid", (), {}, timeout=5, provider_data=None) == "answered"


async def test_a_call_waiting_for_a_restart_gives_up_as_soon_as_the_provider_is_stopped(tmp_path: Path) -> None:
    async with supervising(tmp_path, Behaviour(methods=_methods())) as (supervisor, launcher):
        slot = supervisor.providers["t"]
        launcher.behaviour.fail_start = True
        assert slot.worker is not None
        slot.worker.die(code=1)  # type: ignore[attr-defined]
        await until(lambda: slot.state == "restarting")
        waiting = asyncio.create_task(slot.call("pid", (), {}, timeout=30, provider_data=None))
        await asyncio.sleep(0.02)
        await slot.stop()
        with pytest.raises(ProviderUnavailableError, match="stopped"):
            await asyncio.wait_for(waiting, 2)  # not its 30 s deadline


async def test_lazy_providers_start_on_their_first_call_dependencies_first(tmp_path: Path) -> None:
    async with supervising(tmp_path, Behaviour(methods=_methods()), entries=LAZY) as (supervisor, launcher):
        assert {s.state for s in supervisor.providers.values()} == {"idle"} and launcher.made == []
        t = supervisor.providers["t"]
        calls = [t.call("pid", (), {}, timeout=5, provider_data=None) for _ in range(5)]
        assert await asyncio.gather(*calls) == ["answered"] * 5
        assert [w.plan.provider_id for w in launcher.made] == ["dep", "t"]  # one start each, its dependency first
        assert supervisor.providers["dep"].state == "ready" and t.state == "ready"


async def test_a_lazy_start_that_fails_fails_its_call_and_the_provider(tmp_path: Path) -> None:
    async with supervising(
        tmp_path, Behaviour(methods=_methods(), fail_start=True), entries={"dep": {"start": "lazy"}}, start="lazy"
    ) as (supervisor, _launcher):
        dep = supervisor.providers["dep"]
        with pytest.raises(ProviderStartError, match="factory"):
            await dep.call("pid", (), {}, timeout=5, provider_data=None)
        assert dep.state == "failed" and dep.status().last_exit == "start failed (factory)"


async def test_an_idle_worker_stops_and_the_next_call_starts_it_again(tmp_path: Path) -> None:
    async with supervising(
        tmp_path, Behaviour(methods=_methods()), entries={"t": {"start": "lazy", "idle_stop_s": 0.1}}
    ) as (supervisor, _launcher):
        t = supervisor.providers["t"]
        assert await t.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
        first = t.worker
        assert first is not None
        # "idle" comes first; the worker is then retired (drained and stopped): wait for both.
        await until(lambda: t.state == "idle" and first.exit_info is not None)
        assert first is not None and first.exit_info is not None and t.status().pid is None
        assert supervisor.providers["dep"].state == "ready"  # it has no idle_stop_s
        assert await t.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
        assert t.worker is not first and t.state == "ready"


async def test_an_idle_stop_waits_for_calls_in_flight(tmp_path: Path) -> None:
    release = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods(release)), entries={"t": {"idle_stop_s": 0.05}}) as (
        supervisor,
        _launcher,
    ):
        t = supervisor.providers["t"]
        call = asyncio.create_task(t.call("slow", (), {}, timeout=5, provider_data=None))
        await asyncio.sleep(0.3)  # six idle periods
        assert t.state == "ready" and not call.done()
        release.set()
        assert await call == "finished"
        await until(lambda: t.state == "idle")


async def test_max_running_stops_the_least_recently_used_idle_lazy_worker(tmp_path: Path) -> None:
    release = asyncio.Event()
    launcher = FakeLauncher(Behaviour(methods=_methods(release)))
    supervisor = fake_supervisor(
        tmp_path, launcher, entries={"dep": {"start": "lazy"}, "t": {"start": "lazy"}}, max_running=1
    )
    independent = supervisor.providers["t"].plan.with_policy(dependencies=())
    supervisor.providers["t"].update_policy(independent)
    await supervisor.start()
    try:
        dep, t = supervisor.providers["dep"], supervisor.providers["t"]
        assert await dep.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
        assert await t.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
        assert dep.state == "idle" and t.state == "ready" and supervisor.running() == 1
        busy = asyncio.create_task(t.call("slow", (), {}, timeout=5, provider_data=None))
        await until(t.busy)
        with pytest.raises(ProviderBusyError, match="max_running"):  # the only running one has a call in flight
            await dep.call("pid", (), {}, timeout=5, provider_data=None)
        assert t.state == "ready"
        release.set()
        assert await busy == "finished"
        assert await dep.call("pid", (), {}, timeout=5, provider_data=None) == "answered"
        assert t.state == "idle" and supervisor.running() == 1
    finally:
        await supervisor.stop()


async def test_a_restart_of_a_running_provider_is_rolling(tmp_path: Path) -> None:
    release = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods(release))) as (supervisor, _launcher):
        t = supervisor.providers["t"]
        old = t.worker
        call = asyncio.create_task(t.call("slow", (), {}, timeout=5, provider_data=None))
        await until(t.busy)
        await t.rearm()
        assert t.worker is not old and t.state == "ready" and t.restarts == 1
        release.set()
        assert await call == "finished"  # the call on the old worker was not cut


async def test_stopping_the_host_stops_workers_still_draining(tmp_path: Path) -> None:
    release = asyncio.Event()
    launcher = FakeLauncher(Behaviour(methods=_methods(release)))
    supervisor = fake_supervisor(tmp_path, launcher, drain_grace_s=60)
    await supervisor.start()
    t = supervisor.providers["t"]
    old = t.worker
    call = asyncio.create_task(t.call("slow", (), {}, timeout=30, provider_data=None))
    await until(t.busy)
    await t.replace(t.plan, None)
    await supervisor.stop()
    assert old is not None and old.exit_info is not None  # not left to finish its 60 s drain
    assert all(w.exit_info is not None for w in launcher.made)
    call.cancel()


async def test_stopping_the_host_during_a_lazy_start_leaves_no_worker(tmp_path: Path) -> None:
    gate = asyncio.Event()
    launcher = FakeLauncher(Behaviour(methods=_methods(), start_gate=gate))
    supervisor = fake_supervisor(tmp_path, launcher, entries=LAZY)
    await supervisor.start()
    call = asyncio.create_task(supervisor.providers["dep"].call("pid", (), {}, timeout=5, provider_data=None))
    await until(lambda: len(launcher.made) == 1)  # its worker is starting
    await supervisor.stop()
    with pytest.raises(ProviderUnavailableError):
        await call
    assert launcher.made[0].exit_info is not None and len(launcher.made) == 1
    assert {s.state for s in supervisor.providers.values()} == {"stopped"}


async def test_calls_are_refused_at_once_while_a_restart_waits_for_what_may_never_come(tmp_path: Path) -> None:
    gate = asyncio.Event()
    async with supervising(tmp_path, Behaviour(methods=_methods())) as (supervisor, launcher):
        slot = supervisor.providers["t"]
        old = slot.worker
        assert old is not None
        launcher.behaviour.start_gate = gate
        launcher.behaviour.waiting_for = "a Ray node with {'far': 1}"  # as the Ray launcher says when none has it
        old.die(code=1)  # type: ignore[attr-defined]
        await until(lambda: slot.state == "restarting" and launcher.made[-1] is not old)
        with pytest.raises(ProviderUnavailableError, match=r"restarting, waiting for a Ray node with \{'far': 1\}"):
            await slot.call("pid", (), {}, timeout=30, provider_data=None)  # not left waiting 30 s
        launcher.behaviour.waiting_for = None  # the next start waits for nothing that could be missing
        launcher.made[-1].waiting_for = None  # type: ignore[attr-defined]
        waiting = asyncio.create_task(slot.call("pid", (), {}, timeout=30, provider_data=None))
        await asyncio.sleep(0.7)  # longer than a waiting call takes to look again
        assert not waiting.done()  # a start that will finish: the call waits for it
        gate.set()
        assert await waiting == "answered"
