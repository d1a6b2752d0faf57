"""Ray as a baseline for running providers apart: an actor call, a streaming generator, a new actor.

    python bench/bench_ray_baseline.py [--json bench/results.json] [--calls 2000] [--items 20000]

Needs `ray` (pip install ray); bench/run.py skips this part when it is missing. Ray runs locally with
two CPUs, no dashboard. Compare with the hostel rows of calls.py and supervisor.py from the same run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import median_ms, run_cli

PAYLOAD = "x" * 100


async def bench(calls: int, items: int) -> list[dict[str, Any]]:
    import ray

    # Loopback only: this machine's other addresses are not for benchmarks.
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1"
    )
    try:

        @ray.remote
        class Echo:
            def echo(self, value: str) -> str:
                return value

            def count(self, n: int) -> Any:
                for i in range(n):  # noqa: UP028 - Ray streams need yield; `yield from range()` breaks it
                    yield i

        starts = []
        for _ in range(3):
            begin = time.perf_counter()
            actor = Echo.remote()  # type: ignore[attr-defined]
            await actor.echo.remote("warm")
            starts.append(time.perf_counter() - begin)
            ray.kill(actor)
        actor = Echo.remote()  # type: ignore[attr-defined]
        for _ in range(200):
            await actor.echo.remote(PAYLOAD)
        samples = []
        for _ in range(calls):
            begin = time.perf_counter()
            await actor.echo.remote(PAYLOAD)
            samples.append(time.perf_counter() - begin)
        begin = time.perf_counter()
        got = 0
        async for ref in actor.count.options(num_returns="streaming").remote(items):
            await ref
            got += 1
        rate = got / (time.perf_counter() - begin)
    finally:
        ray.shutdown()
    return [
        {"metric": "Ray actor call median (ms)", "ray": median_ms(samples)},
        {"metric": "Ray streaming generator (items/s)", "ray": rate},
        {"metric": "new Ray actor to first reply (ms)", "ray": statistics.median(starts) * 1000},
    ]


def main() -> None:
    run_cli(__doc__ or "", "ray", "Ray baselines (local, 2 CPUs)", bench, calls=2000, items=20000)


if __name__ == "__main__":
    main()
