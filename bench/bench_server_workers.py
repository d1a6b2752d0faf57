"""A multi-worker OGX server with one bridged provider: how many hostel processes run, and the memory of it all.

    python bench/bench_server_workers.py [--json bench/results.json] [--workers 1 4] [--workdir DIR]

Uses the venv of bench/bench_bridge.py (OGX 1.5, this checkout's hostel, the ogxbench inference provider; needs
a Python 3.12) and runs `ogx run` on 127.0.0.1 with `server.workers: N` for each N, the inference provider
bridged (`remote::hostel-inference`). Once healthy and after a few chat completions (spread over the server's
workers by the kernel), it counts the processes under the server and the hostel ones among them (workers and
their zygotes; the hub the server's processes share, which runs in a session of its own), and sums their PSS
(shared pages counted once). With N > 1 it runs twice: the server's processes sharing one worker of the provider
through a hub (the default), and each with its own (`shared_host: false`, as before hubs). The state directory
is initialised by a one-worker run first: OGX 1.5's own SQLite stores race when N workers create them at once.
"""

from __future__ import annotations

import os
import shutil
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


def _all_started(log: Path, workers: int, timeout: float = 300.0) -> None:
    """Wait until each of the server's processes has its provider (the server answers once its first process is
    up; the others may still be starting theirs)."""
    deadline = time.monotonic() + timeout
    while log.read_text(errors="replace").count("hostel: provider bench ready") < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"the server's {workers} processes did not all start their provider: see {log}")
        time.sleep(0.5)
    time.sleep(2)


def _measure(venv: Path, workdir: Path, state: Path, workers: int, shared: bool = True) -> dict[str, Any]:
    config = bench_bridge._config(bridged=True)
    config["apis"] = ["inference"]
    config["providers"].pop("files")
    if not shared:
        config["providers"]["inference"][0]["config"]["shared_host"] = False
    config["server"]["workers"] = workers
    run_dir = Path(tempfile.mkdtemp(prefix=f"workers-{workers}-", dir=workdir))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "STATE": str(state), "HOSTEL_HOME": str(workdir / "hostel-home")}
    with server(venv, run_dir / "config.yaml", env, run_dir / "server.log") as url:
        _all_started(run_dir / "server.log", workers)
        body = {"model": "bench/bench", "messages": [{"role": "user", "content": "hello"}]}
        with httpx.Client(timeout=120) as client:
            for _ in range(4 * workers):
                client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
        hubs = [p for p in psutil.process_iter(["cmdline"]) if "hostel.bridge.hub" in " ".join(p.info["cmdline"] or ())]
        hubs = [p for p in hubs if str(workdir) in p.environ().get("HOSTEL_HOME", "")]
        processes = psutil.Process().children(recursive=True) + [
            child for hub in hubs for child in [hub, *hub.children(recursive=True)]
        ]
        processes = list({p.pid: p for p in processes}.values())
        zygotes = {p.pid for p in processes if "hostel_sdk.zygote" in " ".join(p.cmdline())}
        # A worker forked by its zygote keeps the zygote's command line: it is a zygote's child.
        forked = {p.pid for p in processes if p.ppid() in zygotes}
        spawned = {p.pid for p in processes if "hostel_sdk.worker" in " ".join(p.cmdline())}
        pss = sum(p.memory_full_info().pss for p in processes) / 2**20
        hub_pss = sum(p.memory_full_info().pss for p in hubs) / 2**20
    shutil.rmtree(run_dir, ignore_errors=True)  # the server has stopped; its log is kept only if it failed
    return {"server workers": workers, "shared": "yes" if shared and workers > 1 else "no",
            "processes": len(processes), "provider workers": len(forked | spawned), "zygotes": len(zygotes - forked),
            "hubs": len(hubs), "hub PSS MB": round(hub_pss, 1), "PSS MB (all)": round(pss, 1)}  # fmt: skip


async def bench(workers: list[str] | None = None, workdir: str = "") -> list[dict[str, Any]]:
    where = Path(workdir or Path(tempfile.gettempdir()) / "hostel-bench-bridge")
    where.mkdir(parents=True, exist_ok=True)
    venv = bench_bridge._venv(where)
    state = Path(tempfile.mkdtemp(prefix="state-", dir=where))
    _measure(venv, where, state, 1)  # creates OGX's stores in the state directory
    rows = []
    for n in map(int, workers or ["1", "4"]):
        if n > 1:
            rows.append(_measure(venv, where, state, n, shared=False))
        rows.append(_measure(venv, where, state, n))
    shutil.rmtree(state, ignore_errors=True)
    return rows


def main() -> None:
    title = "OGX 1.5 with server.workers: N and one bridged provider"
    run_cli(__doc__ or "", "server_workers", title, bench, workers=["1", "4"], workdir="")


if __name__ == "__main__":
    main()
