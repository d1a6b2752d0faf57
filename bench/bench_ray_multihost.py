"""Calls through a Ray worker on another machine against one on the host's own node, the same run.

    python bench/bench_ray_multihost.py [--json bench/results.json] [--calls 2000]

The machines are network namespaces on a private veth network this script makes and removes
(``tests/netns.py``): a Ray head on 10.231.0.1, where the host runs, and a worker node on 10.231.0.2. The test
provider runs twice, ``near`` on the head's node and ``far`` on the other, with per-worker mutual TLS
(``hostel.ray.tls: true``); the nodes build its Ray env offline from a uv cache this script warms first. A
driver on the head's machine times small calls to each, interleaved. Needs root, iproute2 and ``ray``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import run_cli

from tests import netns
from tests.conftest import TESTPROV

# On the head's machine: start the host, then time ``calls`` greet() calls to each provider, interleaved.
DRIVER = """
import asyncio, json, statistics, sys, time
from hostel.host import Host

async def main():
    async with Host.from_config(sys.argv[1]) as host:
        rows = {}
        for p in ("near", "far"):
            for _ in range(50):  # warm-up: connections, TLS sessions
                await host.provider(p).greet(name="w")
        times = {"near": [], "far": []}
        for _ in range(int(sys.argv[2])):
            for p in ("near", "far"):
                t = time.perf_counter()
                await host.provider(p).greet(name="x")
                times[p].append(time.perf_counter() - t)
        status = {s.provider_id: s.address for s in host.status()}
        for p, samples in times.items():
            samples.sort()
            rows[p] = {"address": status[p], "p50_ms": statistics.median(samples) * 1000,
                       "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1000}
        print(json.dumps(rows))

asyncio.run(main())
"""


async def bench(calls: int) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="hmhb-", dir="/tmp"))  # Ray's socket paths must stay short
    try:
        netns.warm_uv_cache(workdir / "uv-cache", workdir, [str(TESTPROV)])
        lab = netns.Lab(workdir)
        try:
            lab.add("head")
            lab.add("b")
            cluster = netns.RayCluster(lab, netns.ray_env(UV_CACHE_DIR=str(workdir / "uv-cache")))
            cluster.start("head", {"head_node": 1}, num_cpus=2, head=True)
            cluster.start("b", {"far_node": 1})
            config = netns.two_node_config(workdir, cluster.address)
            out = lab.run("head", [sys.executable, "-c", DRIVER, str(config), str(calls)], netns.ray_env(), 900)
        finally:
            lab.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    measured = json.loads(out.splitlines()[-1])
    where = {"near": "the host's own node (10.231.0.1)", "far": "another machine (10.231.0.2, over a veth pair)"}
    return [
        {"provider": p, "worker on": where[p], "address": row["address"], "calls": calls, "p50 ms": row["p50_ms"],
         "p99 ms": row["p99_ms"]}
        for p, row in measured.items()
    ]  # fmt: skip


def main() -> None:
    run_cli(__doc__ or "", "ray_multihost", "Ray workers across machines (namespaces), TLS", bench, calls=2000)


if __name__ == "__main__":
    main()
