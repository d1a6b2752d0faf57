"""Launcher benchmark: worker start and call overhead per launcher, against the local-process launcher.

    python bench/bench_launchers.py [--json bench/results.json] [--calls 500] [--starts 3]

The same provider (tests/providers/testprov) under each launcher that can run here: ``process`` (env
cached), ``container`` (podman, image built first with ``hostel image build``; skipped without podman) and
``ray`` (a local Ray started by the benchmark before timing; runtime_env cached by a first start). Start is
``host.start()`` for one provider; a call is a 100-byte ``echo``, median of ``--calls`` sequential calls.
"""

from __future__ import annotations

import os
import statistics
import subprocess
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
from tests.conftest import make_config, provider_spec

IMAGE = "localhost/hostel-testprov:bench"


async def _measure(config: Path, calls: int, starts: int) -> dict[str, float]:
    start_ms = []
    for _ in range(starts + 1):  # the first start warms caches (Ray's runtime_env, the image's layers)
        host = Host.from_config(config)
        await host.build()
        begin = time.perf_counter()
        await host.start()
        start_ms.append((time.perf_counter() - begin) * 1000)
        await host.stop()
    payload = "x" * 100
    async with Host.from_config(config) as host:
        provider = host.provider("t")
        for _ in range(50):
            await provider.echo(value=payload)
        samples = []
        for _ in range(calls):
            begin = time.perf_counter()
            await provider.echo(value=payload)
            samples.append(time.perf_counter() - begin)
    return {"start_ms": statistics.median(start_ms[1:]), "call_ms": statistics.median(samples) * 1000}


def _container_config(tmp: Path) -> Path | None:
    from tests.container_env import BASE_IMAGE, engine_unavailable

    reason = engine_unavailable()
    if reason:
        print(f"container launcher skipped: {reason}", file=sys.stderr)
        return None
    specs = {"inline/tool_runtime/testprov": provider_spec(container_image=IMAGE)}
    providers = {"tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "launcher": "container"}]}
    config = make_config(tmp, providers=providers, specs=specs)
    subprocess.run(
        [sys.executable, "-m", "hostel", "image", "build", str(config), "t", "--base", BASE_IMAGE],
        check=True,
        capture_output=True,
    )
    return config


def _ray_config(tmp: Path) -> Path | None:
    try:
        import ray
    except ImportError:
        print("ray launcher skipped: ray is not installed (pip install 'hostel[ray]')", file=sys.stderr)
        return None
    if not ray.is_initialized():
        ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False)
    providers = {"tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "launcher": "ray"}]}
    return make_config(tmp, providers=providers)


async def bench(calls: int, starts: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="hostel-bench-launchers-") as tmpdir:
        tmp = Path(tmpdir)
        configs = {
            "process": make_config(tmp / "process"),
            "container": _container_config(tmp / "container"),
            "ray": _ray_config(tmp / "ray"),
        }
        base: dict[str, float] = {}
        for name, config in configs.items():
            if config is None:
                continue
            got = await _measure(config, calls, starts)
            base = base or got
            rows.append(
                {
                    "launcher": name,
                    "start_ms": got["start_ms"],
                    "start_vs_process": got["start_ms"] / base["start_ms"],
                    "call_ms": got["call_ms"],
                    "call_vs_process": got["call_ms"] / base["call_ms"],
                    "reached_over": {"process": "unix socket", "container": "unix socket (bind mount)"}.get(
                        name, "tcp + token"
                    ),
                }
            )
    if "ray" in configs and configs["ray"] is not None:
        import ray

        ray.shutdown()
    return rows


def main() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    run_cli(__doc__ or "", "launchers", "launchers (provider: tests/providers/testprov)", bench, calls=500, starts=3)


if __name__ == "__main__":
    main()
