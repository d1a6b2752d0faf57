"""Every benchmark in one run: prints each table and writes bench/results.json.

    python bench/run.py [--quick] [--json bench/results.json] [--only calls supervisor ...]

Each part measures its own baseline in the same run (see docs/performance.md for what each row means).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_bridge
import bench_bridge_steps
import bench_calls
import bench_chaos
import bench_containment
import bench_envs
import bench_gateway
import bench_gateway_security
import bench_launchers
import bench_lifecycle
import bench_pack
import bench_ray_baseline
import bench_ray_multihost
import bench_sandbox
import bench_scale
import bench_server_workers
import bench_supervisor
import bench_telemetry
from _common import print_table

PARTS = (
    "calls", "supervisor", "gateway", "gateway_security", "envs", "ray", "launchers", "containment", "chaos", "sandbox",
    "lifecycle", "telemetry", "scale", "bridge", "bridge_steps", "server_workers", "pack", "ray_multihost",
)  # fmt: skip


async def run_part(name: str, quick: bool) -> list[dict[str, Any]]:
    if name == "calls":
        return await bench_calls.bench(500 if quick else 4000, 5000 if quick else 20000)
    if name == "supervisor":
        return await bench_supervisor.bench(3 if quick else 10)
    if name == "gateway":
        return await bench_gateway.bench(500 if quick else 2000, 5000 if quick else 20000)
    if name == "ray":
        return await bench_ray_baseline.bench(500 if quick else 2000, 5000 if quick else 20000)
    if name == "launchers":
        return await bench_launchers.bench(200 if quick else 1000, 2 if quick else 5)
    if name == "containment":
        return await bench_containment.bench(2000 if quick else 10000, 3.0 if quick else 10.0)
    if name == "chaos":
        return await bench_chaos.bench()
    if name == "gateway_security":
        return await bench_gateway_security.bench(500 if quick else 2000)
    if name == "sandbox":
        return await bench_sandbox.bench(3 if quick else 10)
    if name == "scale":
        return await bench_scale.bench(24 if quick else 64)
    if name == "telemetry":
        return await bench_telemetry.bench(500 if quick else 2000)
    if name == "lifecycle":
        return await bench_lifecycle.bench(10 if quick else 30, 200)
    if name == "pack":  # quick: the README's example; else the seven PyPI providers (GBs, minutes)
        return await bench_pack.bench("conflicting_pins" if quick else "pypi_providers", "")
    if name == "ray_multihost":
        return await bench_ray_multihost.bench(500 if quick else 2000)
    if name == "server_workers":
        return await bench_server_workers.bench(["1", "4"])
    if name == "bridge_steps":
        return await bench_bridge_steps.bench(requests=200 if quick else 800)
    if name == "bridge":
        return await bench_bridge.bench(
            requests=100 if quick else 400, items=1000 if quick else 5000, streams=3 if quick else 7,
            file_mb=10 if quick else 50, rounds=1 if quick else 3,
        )  # fmt: skip
    return await bench_envs.bench(["uv"] if quick else ["uv", "pip"], 10 if quick else 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    opts = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in opts.only:
        if name in ("ray", "ray_multihost") and importlib.util.find_spec("ray") is None:
            print(f"\n{name}: skipped (pip install ray to measure the Ray baselines)")
            continue
        if name == "ray_multihost" and (why := bench_ray_multihost.netns.available()) is not None:
            print(f"\nray_multihost: skipped ({why})")
            continue
        if name in ("bridge", "bridge_steps", "server_workers") and not bench_bridge.python312():
            print(f"\n{name}: skipped (OGX 1.5 needs a Python 3.12: hostel python 3.12 finds none)")
            continue
        if name == "pack" and not bench_pack.can_unshare():
            print("\npack: skipped (needs `unshare -n`, a network namespace, to build offline)")
            continue
        rows = asyncio.run(run_part(name, opts.quick))
        print_table(name, rows)
        results[name] = rows
    opts.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {opts.json}")


if __name__ == "__main__":
    main()
