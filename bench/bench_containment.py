"""Fault-containment benchmark: what a misbehaving client or provider can cost the host and its neighbours.

    python bench/bench_containment.py [--json bench/results.json] [--calls 10000] [--seconds 10]

Rows, each against `hostel run` (or a Host) with the chaos test provider beside the innocent test provider:
- a client holds an endless stream open without reading: the worker's RSS growth over ``seconds``;
- a 1 GB request body, with Content-Length and chunked: the host's peak RSS growth;
- a provider limited to 64 running and 64 queued calls, every place held: how fast one more call is refused
  (503); then ``calls`` HTTP calls sent at the same moment: how many completed, how many were refused, when
  the last answer came and the host's peak RSS growth;
- the innocent provider's call latency (p50/p99) while a neighbour floods stderr at full speed, as a ratio
  to its idle latency measured in the same run, before and after the flood.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import HostelRun, run_cli

from hostel import Host
from tests.conftest import chaos_spec, make_config, provider_spec


def _config(tmp: Path) -> Path:
    return make_config(
        tmp,
        specs={
            "inline/inference/testprov": provider_spec(),
            "inline/tool_runtime/chaos": chaos_spec(api_dependencies=[]),
        },
        providers={
            "inference": [
                {
                    "provider_id": "infer",
                    "provider_type": "inline::testprov",
                    "limits": {"max_concurrent_calls": 64, "max_queued_calls": 64},
                }
            ],
            "tool_runtime": [{"provider_id": "chaos", "provider_type": "inline::chaos"}],
        },
    )


def _status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise LookupError(name)


def _mb(kb: int) -> float:
    return kb / 1024


class _Server(HostelRun):
    def __init__(self, tmp: Path) -> None:
        super().__init__(_config(tmp), env={"HOSTEL_LOG": "error"})

    def pid_of(self, provider_id: str) -> int:
        rows = httpx.get(f"{self.url}/v1/providers").json()["data"]
        return int(next(r["pid"] for r in rows if r["provider_id"] == provider_id))


def _request(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _unread_stream(server: _Server, seconds: float) -> dict[str, Any]:
    worker = server.pid_of("chaos")
    before = _status_kb(worker, "VmRSS")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(_request("/v1/providers/chaos/endless", json.dumps({"size": 65536}).encode()))
        peak = before
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.2)
            peak = max(peak, _status_kb(worker, "VmRSS"))
    return {"row": f"stream nobody reads, {seconds:g} s: worker RSS growth (MB)", "value": _mb(peak - before),
            "goal": "< 32"}  # fmt: skip


def _big_body(server: _Server, *, chunked: bool) -> dict[str, Any]:
    before = _status_kb(server.proc.pid, "VmHWM")
    total = 1 << 30
    chunk = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = b"POST /v1/providers/infer/length HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        length = b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % total
        sock.sendall(head + length)
        sent = 0
        try:
            while sent < total:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n" if chunked else chunk)
                sent += len(chunk)
        except OSError:
            pass  # refused and closed before the body was all sent, as it should be
        sock.settimeout(10)
        status = sock.recv(64).split(b"\r\n")[0].decode()
    assert " 413 " in status, status
    kind = "chunked" if chunked else "Content-Length"
    return {"row": f"1 GB body ({kind}): host peak RSS growth (MB), {sent >> 20} MB sent before 413",
            "value": _mb(_status_kb(server.proc.pid, "VmHWM") - before), "goal": "< 100"}  # fmt: skip


async def _call_over(port: int, seconds: float) -> tuple[int, float]:
    """One ``sleep`` call on a connection of its own: its HTTP status and seconds from sending to the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await _send(reader, writer, seconds)


async def _send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seconds: float) -> tuple[int, float]:
    started = time.perf_counter()
    writer.write(_request("/v1/providers/infer/sleep", b'{"seconds": %g}' % seconds))
    status = int((await reader.readline()).split()[1])
    took = time.perf_counter() - started
    writer.close()
    return status, took


async def _saturated(server: _Server) -> dict[str, Any]:
    """While 128 calls hold every place (64 running, 64 queued), calls one at a time: time to their 503."""
    holders = asyncio.gather(*(_call_over(server.port, 3.0) for _ in range(128)))
    await asyncio.sleep(0.5)
    probes = [await _call_over(server.port, 0.0) for _ in range(200)]
    assert all(status == 200 for status, _ in await holders)
    refused = sorted(took for status, took in probes if status == 503)
    assert len(refused) == len(probes), "a call was admitted while every place was held"
    return {"row": "a call while the provider is saturated: median / p99 time to its 503 (ms)",
            "value": f"{statistics.median(refused) * 1000:.2f} / {refused[int(len(refused) * 0.99)] * 1000:.2f}",
            "goal": "< 10"}  # fmt: skip


async def _burst(server: _Server, calls: int) -> list[dict[str, Any]]:
    """``calls`` calls sent at the same moment to the provider limited to 64 running + 64 queued."""
    before = _status_kb(server.proc.pid, "VmHWM")
    connections = []
    for start in range(0, calls, 500):  # connect first (the listen backlog is finite), then all send at once
        batch = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", server.port) for _ in range(start, min(start + 500, calls)))
        )
        connections.extend(batch)
    results = await asyncio.gather(*(_send(reader, writer, 1.0) for reader, writer in connections))
    refused = [took for status, took in results if status == 503]
    done = [took for status, took in results if status == 200]
    return [
        {"row": f"{calls} calls at once: completed", "value": len(done), "goal": ">= 128, all admitted"},
        {"row": f"{calls} calls at once: refused with 503", "value": len(refused), "goal": "the rest"},
        {"row": f"{calls} calls at once: last answer after (s)", "value": max(t for _, t in results), "goal": "—"},
        {"row": f"{calls} calls at once: host peak RSS growth (MB)",
         "value": _mb(_status_kb(server.proc.pid, "VmHWM") - before), "goal": "bounded"},
    ]  # fmt: skip


async def _latency(call: Any, seconds: float) -> list[float]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)
    return sorted(samples)


def _p(samples: list[float], q: float) -> float:
    return samples[min(int(len(samples) * q), len(samples) - 1)] * 1000


async def _flood_latency(tmp: Path, seconds: float) -> list[dict[str, Any]]:
    async with Host.from_config(_config(tmp)) as host:
        infer, chaos = host.provider("infer"), host.provider("chaos")

        async def call() -> None:
            await infer.greet(name="x")

        await _latency(call, 1.0)  # warm up
        idle = await _latency(call, seconds / 2)
        await chaos.flood(seconds=seconds)
        flooded = await _latency(call, seconds)
        await asyncio.sleep(1.0)
        idle += await _latency(call, seconds / 2)
        idle.sort()
    return [
        {"row": "innocent p50 idle / during a stderr flood (ms)",
         "value": f"{_p(idle, .5):.2f} / {_p(flooded, .5):.2f}", "goal": "—"},
        {"row": "innocent p99 idle / during a stderr flood (ms)",
         "value": f"{_p(idle, .99):.2f} / {_p(flooded, .99):.2f}", "goal": "—"},
        {"row": "innocent p99 ratio, flood / idle", "value": _p(flooded, .99) / _p(idle, .99), "goal": "<= 2"},
    ]  # fmt: skip


async def bench(calls: int, seconds: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        server = _Server(tmp / "run")
        try:
            rows.append(_unread_stream(server, seconds))
            rows.append(_big_body(server, chunked=False))
            rows.append(_big_body(server, chunked=True))
            rows.append(await _saturated(server))
            rows.extend(await _burst(server, calls))
        finally:
            server.stop()
        rows.extend(await _flood_latency(tmp / "api", seconds))
    return rows


def main() -> None:
    title = "Fault containment: what a misbehaving client or provider costs the host and its neighbours"
    run_cli(__doc__ or "", "containment", title, bench, calls=10000, seconds=10.0)


if __name__ == "__main__":
    main()
