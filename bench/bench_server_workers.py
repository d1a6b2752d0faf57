"""A multi-worker OGX server with one bridged provider: how many hostel processes run, and the memory of it all.

    python bench/bench_server_workers.py [--json bench/results.json] [--workers 1 4] [--workdir DIR]

Uses the venv of bench/bench_bridge.py (OGX 1.5, this checkout's hostel, the ogxbench inference provider; needs
a Python 3.12) and runs `ogx run` on 127.0.0.1 with `server.workers: N` for each N, the inference provider
bridged (`remote::hostel-inference`). Once healthy and after a few chat completions (spread over the server's
workers by the kernel), it counts the processes under the server and the hostel ones among them (workers and
their zygotes), and sums their PSS (shared pages counted once). Each server worker builds its providers, so
today each runs its own hostel host and its own worker of the provider. The state directory is initialised by
a one-worker run first: OGX 1.5's own SQLite stores race when N workers create them at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))

import bench_bridge
from _common import run_cli
from ogx_suites import server


def _measure(venv: Path, workdir: Path, state: Path, workers: int) -> dict[str, Any]:
    config = bench_bridge._config(bridged=True)
    config["apis"] = ["inference"]
    config["providers"].pop("files")
    config["server"]["workers"] = workers
    run_dir = Path(tempfile.mkdtemp(prefix=f"workers-{workers}-", dir=workdir))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "STATE": str(state), "HOSTEL_HOME": str(workdir / "hostel-home")}
    with server(venv, run_dir / "config.yaml", env, run_dir / "server.log") as url:
        body = {"model": "bench/bench", "messages": [{"role": "user", "content": "hello"}]}
        with httpx.Client(timeout=120) as client:
            for _ in range(4 * workers):
                client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
        time.sleep(2)
        processes = psutil.Process().children(recursive=True)
        zygotes = {p.pid for p in processes if "hostel_sdk.zygote" in " ".join(p.cmdline())}
        # A worker forked by its zygote keeps the zygote's command line: it is a zygote's child.
        forked = {p.pid for p in processes if p.ppid() in zygotes}
        spawned = {p.pid for p in processes if "hostel_sdk.worker" in " ".join(p.cmdline())}
        pss = sum(p.memory_full_info().pss for p in processes) / 2**20
    return {"server workers": workers, "processes": len(processes), "provider workers": len(forked | spawned),
            "zygotes": len(zygotes - forked), "PSS MB (all)": round(pss, 1)}  # fmt: skip


async def bench(workers: list[str] | None = None, workdir: str = "") -> list[dict[str, Any]]:
    where = Path(workdir or Path(tempfile.gettempdir()) / "hostel-bench-bridge")
    where.mkdir(parents=True, exist_ok=True)
    venv = bench_bridge._venv(where)
    state = Path(tempfile.mkdtemp(prefix="state-", dir=where))
    _measure(venv, where, state, 1)  # creates OGX's stores in the state directory
    return [_measure(venv, where, state, int(n)) for n in (workers or ["1", "4"])]


def main() -> None:
    title = "OGX 1.5 with server.workers: N and one bridged provider"
    run_cli(__doc__ or "", "server_workers", title, bench, workers=["1", "4"], workdir="")


if __name__ == "__main__":
    main()
