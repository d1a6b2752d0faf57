"""Scale benchmark: CPU-bound throughput with replicas, against one worker, measured in the same run.

    python bench/bench_scale.py [--json bench/results.json] [--calls 64] [--ms 50]

The test provider's ``burn(ms)`` holds its worker's event loop and GIL for ``ms`` milliseconds, as real
Python work (embeddings, parsing, an index) does. ``calls`` of them run with 8 in flight through ``Host``,
against ``replicas: 1`` and ``replicas: <cores>``; the speed-up per replica is the figure to read (1.0: every
replica turns into a core's worth of throughput).
"""

from __future__ import annotations

import asyncio
import os
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
from tests.conftest import make_config


def _config(tmp: Path, replicas: int) -> Path:
    provider = {"provider_id": "t", "provider_type": "inline::testprov", "config": {"greeting": "hi"},
                "replicas": replicas}  # fmt: skip
    return make_config(tmp, providers={"tool_runtime": [provider]})


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
        for replicas in (1, cores):
            async with Host.from_config(_config(Path(tmpdir) / str(replicas), replicas)) as host:
                await _throughput(host, 2 * replicas, ms)  # warm up every replica
                figures[replicas] = max([await _throughput(host, calls, ms) for _ in range(3)])
    return [
        {
            "replicas": replicas,
            f"calls/s ({ms:g} ms of CPU each, 8 in flight)": rate,
            "speed-up": rate / figures[1],
            "speed-up per replica": rate / figures[1] / replicas,
        }
        for replicas, rate in figures.items()
    ]


if __name__ == "__main__":
    run_cli(__doc__ or "", "scale", "scale", bench, calls=64, ms=50.0)
