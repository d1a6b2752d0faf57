"""Call and stream benchmark: hostel's whole path against a raw grpc.aio baseline measured in the same run.

    python bench/calls.py [--json bench/results.json] [--calls 2000] [--items 20000]

- call: median latency of a ~100-byte call (Python API -> gRPC -> worker -> provider -> back) and of a
  raw ``grpc.aio`` unary echo on a Unix socket to another process; the ratio is hostel / raw.
- stream: items/s for a provider yielding ``--items`` small items as fast as it can, against a raw
  server stream sending one message per item; the ratio is hostel / raw.
"""

from __future__ import annotations

import argparse
import asyncio
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

from _common import median_ms, print_table, write_json

from hostel import Host
from tests.conftest import make_config

PAYLOAD = "x" * 100


def _identity(data: bytes) -> bytes:
    return data


async def _raw(calls: int, items: int, tmp: Path) -> dict[str, float]:
    sock = tmp / "raw.sock"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_raw_server.py"), str(sock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        async with grpc.aio.insecure_channel(f"unix://{sock}") as channel:
            echo = channel.unary_unary("/bench.Raw/Echo", request_serializer=_identity, response_deserializer=_identity)
            stream = channel.unary_stream(
                "/bench.Raw/Stream", request_serializer=_identity, response_deserializer=_identity
            )
            body = PAYLOAD.encode()
            for _ in range(200):
                await echo(body)
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                await echo(body)
                samples.append(time.perf_counter() - start)
            start = time.perf_counter()
            count = 0
            async for _ in stream(str(items).encode()):
                count += 1
            elapsed = time.perf_counter() - start
        assert count == items
        return {"call_ms": median_ms(samples), "stream_items_s": items / elapsed}
    finally:
        proc.terminate()
        proc.wait()


async def _hostel(calls: int, items: int, tmp: Path) -> dict[str, float]:
    async with Host.from_config(make_config(tmp)) as host:
        provider = host.provider("t")
        for _ in range(200):
            await provider.echo(value=PAYLOAD)
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            await provider.echo(value=PAYLOAD)
            samples.append(time.perf_counter() - start)
        start = time.perf_counter()
        count = 0
        async for _ in await provider.count(n=items):
            count += 1
        elapsed = time.perf_counter() - start
    assert count == items
    return {"call_ms": median_ms(samples), "stream_items_s": items / elapsed}


async def bench(calls: int, items: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        raw = await _raw(calls, items, tmp)
        ours = await _hostel(calls, items, tmp)
    return [
        {"metric": "call median (ms)", "hostel": ours["call_ms"], "raw_grpc": raw["call_ms"],
         "ratio": ours["call_ms"] / raw["call_ms"], "target": "<= 1.3"},
        {"metric": "stream items/s", "hostel": ours["stream_items_s"], "raw_grpc": raw["stream_items_s"],
         "ratio": ours["stream_items_s"] / raw["stream_items_s"], "target": ">= 1.0"},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="merge results into this JSON file")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20000)
    opts = parser.parse_args()
    rows = asyncio.run(bench(opts.calls, opts.items))
    print_table("calls and streams through hostel vs raw grpc.aio (Unix socket, another process)", rows)
    write_json(opts.json, "calls", rows)


if __name__ == "__main__":
    main()
