"""Admission control: calls past a provider's limits (or the host's) are refused at once, not piled up."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from hostel import Host, ProviderBusyError
from hostel.errors import CallTimeoutError
from hostel.supervise.admission import Admission, AdmittedStream, HostGate
from tests.conftest import make_config


def _admission(concurrent: int = 2, queued: int = 1, host_limit: int = 100) -> Admission:
    return Admission("p", concurrent=concurrent, queued=queued, host=HostGate(host_limit))


async def test_calls_past_the_running_limit_queue_in_order_and_past_the_queue_are_refused() -> None:
    gate = _admission(concurrent=1, queued=2)
    await gate.enter(1)
    order: list[int] = []

    async def queued(n: int) -> None:
        await gate.enter(5)
        order.append(n)
        gate.leave()

    waiting = [asyncio.create_task(queued(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(ProviderBusyError, match="1 calls running and 2 queued"):
        await gate.enter(1)
    gate.leave()
    await asyncio.gather(*waiting)
    assert order == [1, 2] and gate.running == 0


async def test_a_call_that_waits_past_its_timeout_leaves_the_queue() -> None:
    gate = _admission(concurrent=1, queued=1)
    await gate.enter(1)
    with pytest.raises(CallTimeoutError, match=r"waited 0\.05s in its queue"):
        await gate.enter(0.05)
    await asyncio.sleep(0)
    gate.leave()
    await gate.enter(0.05)  # the queue is empty again: the place is free
    assert gate.running == 1


async def test_the_host_wide_limit_counts_every_provider() -> None:
    host = HostGate(3)
    a = Admission("a", concurrent=10, queued=10, host=host)
    b = Admission("b", concurrent=10, queued=10, host=host)
    for _ in range(2):
        await a.enter(1)
    await b.enter(1)
    with pytest.raises(ProviderBusyError, match=r"hostel\.max_calls"):
        await b.enter(1)
    a.leave()
    await b.enter(1)
    assert host.calls == 3


class _Items:
    def __init__(self) -> None:
        self.closed = False

    def __aiter__(self) -> _Items:
        return self

    async def __anext__(self) -> Any:
        return 1

    async def aclose(self) -> None:
        self.closed = True


async def test_a_stream_holds_its_place_until_closed_or_dropped() -> None:
    gate = _admission(concurrent=1, queued=0)
    await gate.enter(1)
    stream = AdmittedStream(_Items(), gate.leave)
    assert await stream.__anext__() == 1
    with pytest.raises(ProviderBusyError):
        await gate.enter(1)
    await stream.aclose()
    assert gate.running == 0
    await gate.enter(1)
    dropped = AdmittedStream(_Items(), gate.leave)
    del dropped
    gc.collect()
    assert gate.running == 0


async def test_a_provider_past_its_limits_refuses_at_once_and_serves_the_admitted(tmp_path: Path) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "t", "provider_type": "inline::testprov", "limits": {"max_concurrent_calls": 2,
                                                                                 "max_queued_calls": 2}},
            {"provider_id": "other", "provider_type": "inline::testprov"},
        ]
    }  # fmt: skip
    async with Host.from_config(make_config(tmp_path, providers=providers)) as host:
        t = host.provider("t")
        results = await asyncio.gather(*(t.sleep(seconds=0.5) for _ in range(10)), return_exceptions=True)
        assert results.count(0.5) == 4
        busy = [r for r in results if isinstance(r, ProviderBusyError)]
        assert len(busy) == 6 and all(r.provider_id == "t" for r in busy)
        assert await host.provider("other").greet(name="x") == "hello, x"  # its neighbour never noticed
        stream = await t.count_tracked(n=1000, record=str(tmp_path / "record"), delay=0.01)
        assert await stream.__anext__() == 0
        assert await asyncio.gather(t.sleep(seconds=0), t.sleep(seconds=0)) == [0, 0]  # 1 running, 1 queued
        await stream.aclose()
        assert await asyncio.gather(t.sleep(seconds=0.1), t.sleep(seconds=0.1)) == [0.1, 0.1]
