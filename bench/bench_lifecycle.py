"""Live operations benchmark: what lazy providers cost before their first call, what that call costs, and a
rolling replacement under load.

    python bench/bench_lifecycle.py [--json bench/results.json] [--providers 30] [--rate 200]

Every figure is measured on ``hostel run`` processes (envs built beforehand):

- N providers with ``start: lazy`` against the same N eager, and eager with ``zygote: false`` (every worker
  spawned rather than forked from its provider's zygote): seconds from ``hostel run`` to ``/v1/health``
  answering 200, and the memory of the host, its zygotes and its workers then (PSS: shared pages counted once);
- the first call to a cold provider against a warm call and the worker start it includes;
- a config reload that replaces a provider while clients call it at ``rate`` calls/s: failed calls, the
  longest call during the change against the longest before it (the switch-over gap), how long the reload
  took and when the new version first answered.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import HostelRun, run_cli

from hostel import Host
from tests.conftest import make_config


def _config(tmp: Path, n: int, start: str, greeting: str = "v1", *, zygote: bool = True) -> Path:
    providers = [
        {"provider_id": f"p{i}", "provider_type": "inline::testprov", "config": {"greeting": greeting}}
        for i in range(n)
    ]
    hostel = {"start": start, "drain_grace_s": 30, "zygote": zygote}
    return make_config(tmp, providers={"tool_runtime": providers}, hostel=hostel)


class _Run(HostelRun):
    """``hostel run CONFIG`` started, timed until /v1/health says 200 (polled every 10 ms)."""

    def __init__(self, config: Path) -> None:
        super().__init__(config, poll_s=0.01)

    def memory_mb(self) -> dict[str, float]:
        """PSS and RSS of the host process and of its workers (its descendants), in MB."""
        host = psutil.Process(self.proc.pid)
        workers = host.children(recursive=True)
        pss = {p.pid: p.memory_full_info().pss for p in (host, *workers)}
        rss = {p.pid: p.memory_info().rss for p in (host, *workers)}
        return {
            "host_pss": pss[host.pid] / 2**20,
            "host_rss": rss[host.pid] / 2**20,
            "all_pss": sum(pss.values()) / 2**20,
            "workers": float(len(workers)),
        }


async def _build(config: Path) -> None:
    host = Host.from_config(config)
    await host.build()


def _call_ms(client: httpx.Client, url: str, provider_id: str) -> float:
    began = time.perf_counter()
    response = client.post(f"{url}/v1/providers/{provider_id}/greet", json={"name": "x"})
    assert response.status_code == 200, response.text
    return (time.perf_counter() - began) * 1000


async def _idle_costs(tmp: Path, n: int) -> list[dict[str, Any]]:
    rows = []
    # Eager with zygotes (every worker, the first too, forked from its provider's zygote) against eager spawned.
    for start, zygote in (("lazy", True), ("eager", True), ("eager", False)):
        label = start if zygote else f"{start}, zygote: false"
        config = _config(tmp / label.replace(":", "").replace(", ", "-").replace(" ", ""), n, start, zygote=zygote)
        await _build(config)
        run = _Run(config)
        try:
            await asyncio.sleep(1.0)
            memory = run.memory_mb()
            rows.append(
                {
                    "metric": f"{n} providers, start: {label}: ready (s)",
                    "value": round(run.ready_s, 3),
                    "detail": f"{memory['workers']:.0f} workers",
                }
            )
            rows.append(
                {
                    "metric": f"{n} providers, start: {label}: host + workers PSS (MB)",
                    "value": round(memory["all_pss"], 1),
                    "detail": f"host PSS {memory['host_pss']:.1f}, RSS {memory['host_rss']:.1f}",
                }
            )
            if start == "lazy" and zygote:
                with httpx.Client(timeout=60) as client:
                    _call_ms(client, run.url, "p1")  # the connection, not the provider, is warm after this
                    first = _call_ms(client, run.url, "p0")
                    warm = statistics.median(_call_ms(client, run.url, "p0") for _ in range(50))
                rows.append(
                    {
                        "metric": "first call to a cold provider (ms)",
                        "value": round(first, 1),
                        "detail": f"warm call {warm:.2f} ms",
                    }
                )
        finally:
            run.stop()
    spawned = await _start_ms(tmp, zygote=False)
    rows.append({"metric": "worker start, env cached (ms)", "value": round(await _start_ms(tmp), 1),
                 "detail": f"forked from its zygote; spawned (zygote: false) {spawned:.1f} ms"})  # fmt: skip
    return rows


async def _start_ms(tmp: Path, *, zygote: bool = True) -> float:
    config = _config(tmp / f"one-{zygote}", 1, "eager", zygote=zygote)
    samples = []
    for _ in range(3):
        host = Host.from_config(config)
        await host.build()
        began = time.perf_counter()
        await host.start()
        samples.append((time.perf_counter() - began) * 1000)
        await host.stop()
    return statistics.median(samples)


async def _rolling(tmp: Path, rate: int) -> list[dict[str, Any]]:
    config = _config(tmp / "rolling", 1, "eager", "v1")
    await _build(config)
    await _build(_config(tmp / "rolling-next", 1, "eager", "v2"))
    run = _Run(config)
    samples: list[tuple[float, float, int, str]] = []  # (sent, latency, status, answer)
    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:

            async def one() -> None:
                sent = time.perf_counter()
                try:
                    response = await client.post(f"{run.url}/v1/providers/p0/greet", json={"name": "x"})
                    samples.append((sent, time.perf_counter() - sent, response.status_code, response.text))
                except httpx.HTTPError as exc:
                    samples.append((sent, time.perf_counter() - sent, 0, repr(exc)))

            stop = asyncio.Event()

            async def load() -> None:
                tasks = set()
                interval = 1 / rate
                next_at = time.perf_counter()
                while not stop.is_set():
                    task = asyncio.create_task(one())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    next_at += interval
                    await asyncio.sleep(max(next_at - time.perf_counter(), 0))
                await asyncio.gather(*tasks)

            loading = asyncio.create_task(load())
            await asyncio.sleep(3.0)
            _config(tmp / "rolling", 1, "eager", "v2")  # the same file, a new greeting: a replacement
            reload_began = time.perf_counter()
            response = await client.post(f"{run.url}/v1/hostel/reload", json={}, headers=run.admin_headers())
            reload_ended = time.perf_counter()
            assert response.status_code == 200 and response.json()["replaced"] == ["p0"], response.text
            await asyncio.sleep(3.0)
            stop.set()
            await loading
    finally:
        run.stop()
    before = [s for s in samples if s[0] < reload_began]
    during = [s for s in samples if reload_began <= s[0] <= reload_ended + 1.0]
    failed = [s for s in samples if s[2] != 200]
    new = [s[0] + s[1] for s in samples if s[2] == 200 and "v2" in s[3]]
    first_new = min(new) - reload_began if new else float("nan")
    worst_before = max(s[1] for s in before) * 1000
    worst_during = max(s[1] for s in during) * 1000
    return [
        {"metric": f"rolling replace at {rate} calls/s: calls made", "value": len(samples), "detail": ""},
        {"metric": "rolling replace: failed calls", "value": len(failed), "detail": failed[0][3] if failed else ""},
        {
            "metric": "rolling replace: switch-over gap (ms; <= 0: none above the noise)",
            "value": round(worst_during - worst_before, 1),
            "detail": f"longest call during the change {worst_during:.1f} ms, before it {worst_before:.1f} ms; "
            f"median before {statistics.median(s[1] for s in before) * 1000:.2f} ms",
        },
        {
            "metric": "rolling replace: reload to new version serving (s)",
            "value": round(first_new, 3),
            "detail": f"the reload request took {reload_ended - reload_began:.3f} s",
        },
    ]


async def bench(providers: int = 30, rate: int = 200) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        return [*await _idle_costs(Path(tmp), providers), *await _rolling(Path(tmp), rate)]


if __name__ == "__main__":
    os.environ.setdefault("HOSTEL_LOG", "warning")
    run_cli(__doc__ or "", "lifecycle", "lifecycle", bench, providers=30, rate=200)
