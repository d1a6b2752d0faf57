"""Scale benchmark: CPU-bound throughput with replicas, what a new replica costs, and replicas' memory.

    python bench/bench_scale.py [--json bench/results.json] [--calls 64] [--ms 50]

- The test provider's ``burn(ms)`` holds its worker's event loop and GIL for ``ms`` milliseconds, as real
  Python work (embeddings, parsing, an index) does. ``calls`` of them run with 8 in flight through ``Host``,
  against ``replicas: 1`` and ``replicas: <cores>``; the speed-up per replica is the figure to read (1.0:
  every replica turns into a core's worth of throughput).
- A new replica (``resize`` from 1 to 2, as a reload does) until it serves, forked from the zygote and
  spawned (``zygote: false``).
- The PSS of 4 replicas (shared pages counted once) against one spawned worker's RSS, with and without the
  zygote.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import run_cli

from hostel import Host
from hostel.supervise.provider import Provider
from tests.conftest import make_config


def _config(tmp: Path, replicas: int, zygote: bool = True) -> Path:
    provider = {"provider_id": "t", "provider_type": "inline::testprov", "config": {"greeting": "hi"},
                "replicas": replicas, "zygote": zygote}  # fmt: skip
    return make_config(tmp, providers={"tool_runtime": [provider]})


async def _new_replica_ms(tmp: Path, zygote: bool, repeat: int = 5) -> float:
    samples = []
    async with Host.from_config(_config(tmp, 1, zygote)) as host:
        slot = host.supervisor.providers["t"]
        assert isinstance(slot, Provider)
        await asyncio.sleep(0.5)
        for _ in range(repeat):
            begin = time.perf_counter()
            await slot.resize(2)
            samples.append((time.perf_counter() - begin) * 1000)
            await slot.resize(1)
    return statistics.median(samples)


async def _memory_mb(tmp: Path, zygote: bool) -> tuple[float, float]:
    """(PSS of 4 replicas, RSS of one replica), each after a call."""
    async with Host.from_config(_config(tmp, 4, zygote)) as host:
        await asyncio.gather(*(host.provider("t").greet(name="x") for _ in range(16)))
        await asyncio.sleep(0.5)
        status = host.status(usage=True)[0]
        assert status.pss_bytes is not None and status.replicas[0].rss_bytes is not None
        return status.pss_bytes / 2**20, status.replicas[0].rss_bytes / 2**20


async def _throughput(host: Host, calls: int, ms: float, in_flight: int = 8) -> float:
    provider = host.provider("t")
    pending = iter(range(calls))

    async def client() -> None:
        for _ in pending:
            await provider.burn(ms=ms)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(in_flight)))
    return calls / (time.perf_counter() - start)


async def bench(calls: int = 64, ms: float = 50) -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    figures: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for replicas in (1, cores):
            async with Host.from_config(_config(tmp / str(replicas), replicas)) as host:
                await _throughput(host, 2 * replicas, ms)  # warm up every replica
                figures[replicas] = max([await _throughput(host, calls, ms) for _ in range(3)])
        forked_ms, spawned_ms = await _new_replica_ms(tmp / "nz", True), await _new_replica_ms(tmp / "ns", False)
        forked_pss, forked_rss = await _memory_mb(tmp / "mz", True)
        spawned_pss, spawned_rss = await _memory_mb(tmp / "ms", False)
    rows: list[dict[str, Any]] = [
        {
            "what": f"{replicas} replica(s): calls/s, {ms:g} ms of CPU each, 8 in flight",
            "figure": rate,
            "against": f"speed-up {rate / figures[1]:.2f}, {rate / figures[1] / replicas:.2f} per replica",
        }
        for replicas, rate in figures.items()
    ]
    rows += [
        {"what": "a new replica until it serves, forked (ms)", "figure": forked_ms,
         "against": f"spawned (zygote: false): {spawned_ms:.1f} ms"},
        {"what": "PSS of 4 replicas, forked (MB)", "figure": forked_pss,
         "against": f"{forked_pss / spawned_rss:.2f} x one spawned worker's RSS ({spawned_rss:.1f} MB)"},
        {"what": "PSS of 4 replicas, spawned (MB)", "figure": spawned_pss,
         "against": f"{spawned_pss / spawned_rss:.2f} x one spawned worker's RSS; forked RSS each {forked_rss:.1f}"},
    ]  # fmt: skip
    return rows


if __name__ == "__main__":
    run_cli(__doc__ or "", "scale", "scale", bench, calls=64, ms=50.0)
