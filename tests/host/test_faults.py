"""Faults with real providers in real venvs: crashes stay contained, workers come back, nothing is orphaned."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hostel import Host, ProviderCrashedError, ProviderStartError, RemoteError
from tests.conftest import hostel_pids, hostel_processes, make_config, provider_spec, wait_until, worker_pids

FAST_RESTART = {"restart": {"max_restarts": 5, "window_s": 60, "backoff_initial_s": 0.05, "backoff_max_s": 1}}
SPECS = {
    "inline/inference/testprov": provider_spec(),
    "inline/vector_io/store": provider_spec(
        module="hostel_testprov.store", config_class="hostel_testprov.store.StoreConfig", api_dependencies=["inference"]
    ),
    "inline/tool_runtime/testprov": provider_spec(),
}
PROVIDERS = {
    "inference": [{"provider_id": "infer", "provider_type": "inline::testprov"}],
    "vector_io": [{"provider_id": "store", "provider_type": "inline::store"}],
    "tool_runtime": [{"provider_id": "other", "provider_type": "inline::testprov"}],
}


async def _ready(host: Host, provider_id: str) -> None:
    for _ in range(500):
        if {s.provider_id: s.state for s in host.status()}[provider_id] == "ready":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{provider_id} never came back")


async def test_crash_is_contained_reported_and_restarted_while_others_serve(tmp_path: Path) -> None:
    async with Host.from_config(make_config(tmp_path, specs=SPECS, providers=PROVIDERS, hostel=FAST_RESTART)) as host:
        other = host.provider("other")
        infer = host.provider("infer")
        old_pid = (await infer.whoami())["pid"]

        async def others() -> list[float]:
            return list(await asyncio.gather(*(other.sleep(seconds=0.3) for _ in range(5))))

        background = asyncio.create_task(others())
        with pytest.raises(ProviderCrashedError) as exc:
            await infer.crash(code=7)
        assert exc.value.exit_code == 7 and "about to crash" in exc.value.stderr_tail
        assert await background == [0.3] * 5  # the other provider's calls never noticed
        await _ready(host, "infer")
        assert (await infer.whoami())["pid"] != old_pid
        status = {s.provider_id: s for s in host.status()}
        assert status["infer"].restarts == 1 and status["other"].restarts == 0

        sleeping = asyncio.create_task(other.sleep(seconds=30))
        await asyncio.sleep(0.3)
        assert status["other"].pid is not None
        os.kill(status["other"].pid, signal.SIGKILL)
        with pytest.raises(ProviderCrashedError) as killed:
            await sleeping
        assert killed.value.signal == signal.SIGKILL and killed.value.exit_code is None


async def test_a_call_through_a_crashing_dependency_fails_alone(tmp_path: Path) -> None:
    async with Host.from_config(make_config(tmp_path, specs=SPECS, providers=PROVIDERS, hostel=FAST_RESTART)) as host:
        slow = asyncio.create_task(host.provider("store").slow_inference(seconds=5))
        await asyncio.sleep(0.5)
        infer_pid = (await host.provider("infer").whoami())["pid"]
        os.kill(infer_pid, signal.SIGKILL)  # the dependency dies while store's call is inside it
        with pytest.raises(RemoteError, match="ProviderCrashedError"):
            await slow
        assert await host.provider("other").greet(name="fine") == "hello, fine"
        await _ready(host, "infer")
        assert await host.provider("store").greet_through_inference(name="back") == "hello, back"


async def test_memory_limit_kills_the_worker_with_a_message_naming_it(tmp_path: Path) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "t", "provider_type": "inline::testprov", "limits": {"memory_mb": 200}, **FAST_RESTART}
        ]
    }
    async with Host.from_config(make_config(tmp_path, providers=providers)) as host:
        with pytest.raises(ProviderCrashedError) as exc:
            await host.provider("t").hog(megabytes=400)
        assert "memory limit of 200 MB" in str(exc.value) and exc.value.signal == 9
        await _ready(host, "t")
        assert await host.provider("t").hog(megabytes=10, hold_s=0) == 10 * 1024 * 1024


async def test_start_or_refuse_leaves_no_worker_running(tmp_path: Path, hostel_home: Path) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "good", "provider_type": "inline::testprov"},
            {"provider_id": "bad", "provider_type": "inline::testprov", "config": {"fail_in_factory": True}},
        ]
    }
    host = Host.from_config(make_config(tmp_path, providers=providers))
    before = set(hostel_pids(str(hostel_home)))  # the session's home: an earlier test's may still be exiting
    with pytest.raises(ProviderStartError) as exc:
        await host.start()
    assert exc.value.provider_id == "bad" and exc.value.stage == "factory"
    left = {pid: cmd for pid, (cmd, _) in hostel_processes(str(hostel_home)).items() if pid not in before}
    assert left == {}
    assert {s.state for s in host.status()} <= {"stopped", "failed"}


def test_workers_die_with_a_sigkilled_host(tmp_path: Path, hostel_home: Path) -> None:
    config = make_config(tmp_path)
    before = set(hostel_pids(str(hostel_home)))
    host = subprocess.Popen(
        [sys.executable, "-m", "hostel", "call", str(config), "t", "sleep", "--args", '{"seconds": 120}'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: set(worker_pids(str(hostel_home))) - before, timeout=120)
        ours = set(hostel_pids(str(hostel_home))) - before  # the worker and its zygote
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        assert wait_until(lambda: not (set(hostel_pids(str(hostel_home))) & ours), timeout=5), "orphaned workers"
    finally:
        if host.poll() is None:
            host.kill()
