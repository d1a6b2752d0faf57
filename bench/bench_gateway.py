"""HTTP gateway benchmark: hostel run against a bare ASGI app returning the same JSON, in one run.

    python bench/bench_gateway.py [--json bench/results.json] [--requests 2000] [--items 20000]

Both servers are uvicorn processes on loopback; the client is httpx. Measured: median latency of a
small JSON call, requests/s with 16 in flight, and SSE items/s for a 20,000-item stream.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import HostelRun, free_port, run_cli, wait_up

from tests.conftest import make_config

PAYLOAD = "x" * 100


async def _measure(client: httpx.AsyncClient, call_url: str, stream_url: str, n: int, items: int) -> dict[str, float]:
    body = {"value": PAYLOAD}
    for _ in range(100):
        await client.post(call_url, json=body)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        response = await client.post(call_url, json=body)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 200
    start = time.perf_counter()

    async def worker() -> None:
        for _ in range(n // 16):
            assert (await client.post(call_url, json=body)).status_code == 200

    await asyncio.gather(*(worker() for _ in range(16)))
    rps = (n // 16 * 16) / (time.perf_counter() - start)
    start = time.perf_counter()
    got = 0
    async with client.stream("POST", stream_url, json={"n": items}) as response:
        async for line in response.aiter_lines():
            got += line.startswith("data: ")
    assert got == items
    return {
        "median_ms": statistics.median(samples) * 1000,
        "rps": rps,
        "sse_items_s": items / (time.perf_counter() - start),
    }


async def bench(requests: int, items: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(HERE / "_bare_app.py"), str(bare_port)])
        ours: HostelRun | None = None
        try:
            wait_up(f"http://127.0.0.1:{bare_port}/", bare)
            ours = HostelRun(make_config(tmp), env={"HOSTEL_LOG": "warning"})
            async with httpx.AsyncClient(timeout=60) as client:
                base = await _measure(
                    client, f"http://127.0.0.1:{bare_port}/echo", f"http://127.0.0.1:{bare_port}/count", requests, items
                )
                mine = await _measure(
                    client, f"{ours.url}/v1/providers/t/echo", f"{ours.url}/v1/providers/t/count", requests, items
                )
        finally:
            bare.terminate()
            bare.wait()
            if ours is not None:
                ours.stop()
    return [
        {"metric": "call median (ms)", "hostel": mine["median_ms"], "bare_asgi": base["median_ms"],
         "ratio": mine["median_ms"] / base["median_ms"]},
        {"metric": "requests/s, 16 in flight", "hostel": mine["rps"], "bare_asgi": base["rps"],
         "ratio": mine["rps"] / base["rps"]},
        {"metric": "SSE items/s", "hostel": mine["sse_items_s"], "bare_asgi": base["sse_items_s"],
         "ratio": mine["sse_items_s"] / base["sse_items_s"]},
    ]  # fmt: skip


def main() -> None:
    title = "HTTP gateway (hostel run) vs a bare Starlette app on uvicorn returning the same JSON"
    run_cli(__doc__ or "", "gateway", title, bench, requests=2000, items=20000)


if __name__ == "__main__":
    main()
