"""Supervisor benchmark: crash -> in-flight error, crash -> ready again, worker start, idle memory.

    python bench/bench_supervisor.py [--json bench/results.json] [--repeat 10]

Baselines measured in the same run: a raw grpc.aio server process killed during a call (time until
the client sees UNAVAILABLE), and the RSS of an idle raw grpc.aio server process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import contextlib

from _common import run_cli

from hostel import Host, ProviderCrashedError
from tests.conftest import make_config


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _identity(data: bytes) -> bytes:
    return data


async def _raw_crash_ms(tmp: Path) -> tuple[float, float]:
    sock = tmp / "raw.sock"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_raw_server.py"), str(sock)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    await asyncio.sleep(1.0)
    rss = _rss_mb(proc.pid)
    async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
        sleep = channel.unary_unary("/bench.Raw/Sleep", request_serializer=_identity, response_deserializer=_identity)
        call = asyncio.ensure_future(sleep(b"30"))
        await asyncio.sleep(0.3)
        start = time.perf_counter()
        proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call
        elapsed = (time.perf_counter() - start) * 1000
    proc.wait()
    return elapsed, rss


async def _hostel(tmp: Path, repeat: int) -> dict[str, float]:
    restart = {"max_restarts": repeat + 5, "window_s": 60, "backoff_initial_s": 0, "backoff_max_s": 0}
    config = make_config(tmp, hostel={"restart": restart})
    starts = []
    python = None
    for _ in range(3):
        host = Host.from_config(config)
        await host.build()  # env cached: measure the worker start alone
        env = host.supervisor.providers["t"].env
        python = env.python if env is not None else None
        begin = time.perf_counter()
        await host.start()
        starts.append((time.perf_counter() - begin) * 1000)
        await host.stop()
    assert python is not None
    floor_ms = _import_floor_ms(python)
    many_ms, host_rss = await _eight(tmp / "eight")
    crash_ms, ready_ms = await _crashes(config, repeat)
    spawn_config = make_config(tmp / "spawn", hostel={"restart": restart, "zygote": False})
    _, spawn_ready_ms = await _crashes(spawn_config, repeat)
    standby_config = make_config(tmp / "standby", hostel={"restart": restart, "standby_workers": True, "zygote": False})
    _, standby_ready_ms = await _crashes(standby_config, repeat)
    async with Host.from_config(config) as host:
        slot = host.supervisor.providers["t"]
        await asyncio.sleep(1.0)
        assert slot.worker is not None and slot.worker.pid is not None
        rss = _rss_mb(slot.worker.pid)
    return {
        "floor_ms": floor_ms,
        "start_ms": statistics.median(starts),
        "crash_error_ms": statistics.median(crash_ms),
        "crash_ready_ms": statistics.median(ready_ms),
        "spawn_ready_ms": statistics.median(spawn_ready_ms),
        "standby_ready_ms": statistics.median(standby_ready_ms),
        "idle_rss_mb": rss,
        "eight_ms": many_ms,
        "host_rss_mb": host_rss,
    }


def _import_floor_ms(python: Path, repeat: int = 5) -> float:
    """A process of the provider's venv that imports grpc.aio and pydantic and exits: what any worker pays."""
    samples = []
    for _ in range(repeat):
        begin = time.perf_counter()
        subprocess.run([str(python), "-c", "import grpc.aio; from pydantic import BaseModel"], check=True)
        samples.append((time.perf_counter() - begin) * 1000)
    return statistics.median(samples)


async def _eight(tmp: Path) -> tuple[float, float]:
    """8 providers started concurrently (envs built first); the host process's RSS once they run."""
    providers = {"tool_runtime": [{"provider_id": f"p{i}", "provider_type": "inline::testprov"} for i in range(8)]}
    host = Host.from_config(make_config(tmp, providers=providers))
    await host.build()
    begin = time.perf_counter()
    await host.start()
    elapsed = (time.perf_counter() - begin) * 1000
    try:
        await asyncio.gather(*(host.provider(f"p{i}").greet(name="x") for i in range(8)))
        return elapsed, _rss_mb(os.getpid())
    finally:
        await host.stop()


async def _crashes(config: Path, repeat: int) -> tuple[list[float], list[float]]:
    """SIGKILL the worker during a call, ``repeat`` times: ms until the call fails, and until ready again."""
    crash_ms, ready_ms = [], []
    async with Host.from_config(config) as host:
        provider = host.provider("t")
        slot = host.supervisor.providers["t"]
        await asyncio.sleep(1.0)
        for _ in range(repeat):
            assert slot.worker is not None and slot.worker.pid is not None
            call = asyncio.ensure_future(provider.sleep(seconds=30))
            await asyncio.sleep(0.2)
            start = time.perf_counter()
            os.kill(slot.worker.pid, signal.SIGKILL)
            with contextlib.suppress(ProviderCrashedError):
                await call
            crash_ms.append((time.perf_counter() - start) * 1000)
            while slot.state != "ready":
                await asyncio.sleep(0.001)
            ready_ms.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.5)  # let a standby get ready again
    return crash_ms, ready_ms


async def bench(repeat: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        raw_crash, raw_rss = await _raw_crash_ms(tmp)
        ours = await _hostel(tmp, repeat)
    return [
        {"metric": "crash -> in-flight error (ms)", "hostel": ours["crash_error_ms"], "baseline": raw_crash,
         "baseline_is": "raw grpc.aio client sees UNAVAILABLE", "target": "< 10"},
        {"metric": "crash -> ready again, backoff 0, forked from the zygote (ms)", "hostel": ours["crash_ready_ms"],
         "baseline": ours["floor_ms"], "baseline_is": "the import floor below", "target": "<= 0.5 x floor, < 50"},
        {"metric": "crash -> ready again, backoff 0, zygote: false (ms)", "hostel": ours["spawn_ready_ms"],
         "baseline": "-", "baseline_is": "-", "target": "< 200"},
        {"metric": "crash -> ready again, backoff 0, standby_workers, zygote: false (ms)",
         "hostel": ours["standby_ready_ms"], "baseline": "-", "baseline_is": "-", "target": "< 200"},
        {"metric": "worker start, env cached (ms)", "hostel": ours["start_ms"], "baseline": ours["floor_ms"],
         "baseline_is": "python -c 'import grpc.aio; from pydantic import BaseModel' in that venv", "target": "< 150"},
        {"metric": "8 providers started concurrently (ms)", "hostel": ours["eight_ms"],
         "baseline": 8 * ours["floor_ms"] / (os.cpu_count() or 1),
         "baseline_is": "8 x that import, spread over every core", "target": "< 1000"},
        {"metric": "host RSS with 8 providers (MB)", "hostel": ours["host_rss_mb"], "baseline": "-",
         "baseline_is": "(the benchmark process, which is the host)", "target": "-"},
        {"metric": "idle worker RSS (MB)", "hostel": ours["idle_rss_mb"], "baseline": raw_rss,
         "baseline_is": "idle raw grpc.aio server process", "target": "< 50"},
    ]  # fmt: skip


def main() -> None:
    run_cli(__doc__ or "", "supervisor", "supervision (provider: tests/providers/testprov)", bench, repeat=10)


if __name__ == "__main__":
    main()
