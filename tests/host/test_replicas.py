"""Replicas: several real workers behind one provider id, each supervised on its own, calls to the least loaded."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hostel import Host
from hostel.errors import ConfigError, ProviderCrashedError
from tests.conftest import make_config, wait_until


def _config(tmp_path: Path, replicas: Any = 2, **entry: Any) -> Path:
    provider = {"provider_id": "t", "provider_type": "inline::testprov", "config": {"greeting": "hi"}}
    return make_config(
        tmp_path,
        providers={"tool_runtime": [{**provider, "replicas": replicas, **entry}]},
        hostel={"restart": {"backoff_initial_s": 0.05}},
    )


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    async with Host.from_config(_config(tmp_path)) as started:
        yield started


async def test_replicas_are_workers_of_their_own_and_share_the_calls(host: Host) -> None:
    status = host.status()[0]
    assert status.state == "ready" and [r.replica for r in status.replicas] == [0, 1]
    pids = {r.pid for r in status.replicas}
    assert len(pids) == 2 and None not in pids
    t = host.provider("t")
    answered = await asyncio.gather(*(t.burn(ms=100) for _ in range(8)))
    assert set(answered) == pids  # least-loaded routing used both
    assert sorted(answered.count(pid) for pid in pids) == [4, 4]


async def test_a_stream_stays_on_the_replica_that_returned_it(host: Host) -> None:
    t = host.provider("t")
    stream = await t.timed_stream(n=3, interval=0.05)
    items = [item async for item in stream]
    assert len(items) == 3


async def test_one_replica_crashing_fails_only_its_own_calls(host: Host) -> None:
    t = host.provider("t")
    calls = [asyncio.create_task(t.sleep(seconds=1.0)) for _ in range(4)]  # two on each replica
    await asyncio.sleep(0.3)
    victim = host.status()[0].replicas[1].pid
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r) for r in results].count(ProviderCrashedError) == 2
    assert [r for r in results if not isinstance(r, BaseException)] == [1.0, 1.0]

    def back() -> bool:
        replicas = host.status()[0].replicas
        return replicas[1].state == "ready" and replicas[1].pid not in (None, victim)

    assert await asyncio.to_thread(wait_until, back, 20)
    status = host.status()[0]
    assert status.restarts == 1 and status.replicas[0].restarts == 0 and status.replicas[1].restarts == 1


async def test_a_reload_adds_and_removes_replicas(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path)) as host:
        first = host.status()[0].replicas[0].pid
        report = await host.reload(_config(tmp_path, replicas=3))
        assert report.ok and report.updated == ("t",), report.summary()
        status = host.status()[0]
        assert len(status.replicas) == 3 and all(r.state == "ready" for r in status.replicas)
        assert status.replicas[0].pid == first  # nothing else was restarted
        assert len(set(await asyncio.gather(*(host.provider("t").burn(ms=60) for _ in range(9))))) == 3
        report = await host.reload(_config(tmp_path, replicas=1))
        assert report.ok and host.status()[0].replicas == () and host.status()[0].pid == first


def test_replicas_need_their_workers_running(tmp_path: Path) -> None:
    from hostel.config.plan import load_plan

    with pytest.raises(ConfigError, match="replicas cannot be combined with start: lazy"):
        load_plan(_config(tmp_path, start="lazy"))
    assert load_plan(_config(tmp_path, replicas="auto")).providers[0].policy.replicas == os.cpu_count()


def test_hostel_ps_and_the_providers_route_show_each_replica(tmp_path: Path, hostel_home: Path) -> None:
    from tests.served import Served

    served = Served(_config(tmp_path), hostel_home)
    try:
        info = served.get("/v1/providers/t").json()
        assert info["health"]["status"] == "Not Implemented"  # the test provider has no health()
        assert [r["replica"] for r in info["replicas"]] == [0, 1]
        listed = served.cli("ps").stdout
        rows = {line.split()[0]: line.split() for line in listed.splitlines()[1:]}
        assert {"t", "t#0", "t#1"} <= set(rows) and rows["t"][4] == "-"
        assert {rows["t#0"][4], rows["t#1"][4]} == {str(r["pid"]) for r in info["replicas"]}
    finally:
        served.stop()
