"""Call and stream benchmark: hostel's whole path against a raw grpc.aio baseline measured in the same run.

    python bench/bench_calls.py [--json bench/results.json] [--calls 2000] [--items 20000]

- call: median latency of a ~100-byte call (Python API -> gRPC -> worker -> provider -> back) and of a
  raw ``grpc.aio`` unary echo on a Unix socket to another process; the ratio is hostel / raw.
- stream: items/s for a provider yielding ``--items`` small items as fast as it can, against a raw
  server stream sending one message per item; the ratio is hostel / raw.
- floors, for the record: the same bare server speaking hostel's wire messages (what the envelope alone
  costs), and a raw echo of text that both ends turn into a Python ``str`` (what a str argument costs).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import median_ms, run_cli

from hostel import Host
from hostel.config import HostelSettings
from hostel_sdk import _memory, codec
from hostel_sdk import _messages as pb
from tests.conftest import make_config

PAYLOAD = "x" * 100
# What a worker sets with mallopt under the default hostel.retain_freed_mb, for a raw server to compare with.
_RETAIN = HostelSettings().retain_freed_mb * 2**20
WORKER_MALLOC = _memory.glibc_tunables(_RETAIN)


def _identity(data: bytes) -> bytes:
    return data


class _Raw:
    """The baseline server in its own process, and a channel to it."""

    def __init__(self, tmp: Path, name: str = "raw", env: dict[str, str] | None = None) -> None:
        self.sock = tmp / f"{name}.sock"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_raw_server.py"), str(self.sock)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        limit = 64 * 1024 * 1024
        options = [("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
        self.channel = grpc.aio.insecure_channel(f"unix://{self.sock}", options=options)
        self.echo = self.channel.unary_unary(
            "/bench.Raw/Echo", request_serializer=_identity, response_deserializer=_identity
        )
        self.stream = self.channel.unary_stream(
            "/bench.Raw/Stream", request_serializer=_identity, response_deserializer=_identity
        )
        self.timed = self.channel.unary_stream(
            "/bench.Raw/TimedStream", request_serializer=_identity, response_deserializer=_identity
        )
        self.echo_stream = self.channel.stream_stream(
            "/bench.Raw/EchoStream", request_serializer=_identity, response_deserializer=_identity
        )
        self.mebibytes = self.channel.unary_stream(
            "/bench.Raw/Mebibytes", request_serializer=_identity, response_deserializer=_identity
        )
        self.envelope = self.channel.unary_unary(
            "/bench.Raw/Envelope",
            request_serializer=pb.CallRequest.SerializeToString,
            response_deserializer=pb.CallReply.FromString,
        )
        self.text = self.channel.unary_unary(
            "/bench.Raw/EchoText", request_serializer=_identity, response_deserializer=_identity
        )

    async def call(self) -> None:
        await self.echo(PAYLOAD.encode())

    async def envelope_call(self) -> None:
        reply = await self.envelope(pb.CallRequest(method="echo", kwargs_json=codec.dumps({"value": PAYLOAD})))
        codec.loads(reply.value_json)

    async def echo_text(self, size: int) -> None:
        assert len(codec.decode_text(await self.text(codec.encode_text("x" * size)))) == size

    async def items(self, n: int) -> int:
        return sum([1 async for _ in self.stream(str(n).encode())])

    async def echo_bytes(self, size: int) -> None:
        assert len(await self.echo(b"x" * size)) == size

    async def slow_latency_ms(self, n: int, interval: float) -> float:
        return statistics.median(
            [(time.time() - float(t)) * 1000 async for t in self.timed(f"{n} {interval}".encode())]
        )

    async def close(self) -> None:
        await self.channel.close()
        self.proc.terminate()
        self.proc.wait()


async def _timed_calls(call: Any, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def _items_per_s(stream: Any, n: int) -> float:
    start = time.perf_counter()
    assert await stream(n) == n
    return n / (time.perf_counter() - start)


async def bench(calls: int, items: int, rounds: int = 8) -> list[dict[str, Any]]:
    """Interleave rounds of raw and hostel measurements so machine noise hits both alike."""
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        raw = _Raw(tmp)
        warm = _Raw(tmp, "warm", env={"GLIBC_TUNABLES": WORKER_MALLOC})
        try:
            async with Host.from_config(make_config(tmp)) as host:
                provider = host.provider("t")

                async def ours_call() -> None:
                    await provider.echo(value=PAYLOAD)

                async def ours_items(n: int) -> int:
                    return sum([1 async for _ in await provider.count(n=n)])

                async def ours_echo_bytes(size: int) -> None:
                    assert len(await provider.echo(value="x" * size)) == size

                async def ours_slow_ms(n: int, interval: float) -> float:
                    stream = await provider.timed_stream(n=n, interval=interval)
                    return statistics.median([(time.time() - t) * 1000 async for t in stream])

                await _timed_calls(raw.call, 200)
                await _timed_calls(ours_call, 200)
                raw_rps, envelope_rps, our_rps = await _throughputs((raw.call, raw.envelope_call, ours_call), calls)
                extra = {
                    "raw_rps": raw_rps,
                    "our_rps": our_rps,
                    "envelope_rps": envelope_rps,
                    "inproc_ms": await _inprocess_ms(calls),
                    "raw_slow": await raw.slow_latency_ms(50, 0.02),
                    "our_slow": await ours_slow_ms(50, 0.02),
                }
                for size in (1 << 20, 8 << 20):
                    echoes = (raw.echo_bytes, warm.echo_bytes, warm.echo_text, ours_echo_bytes)
                    rates = await _bandwidths(echoes, size)
                    extra[f"raw_{size}"], extra[f"warm_{size}"], extra[f"text_{size}"], extra[f"our_{size}"] = rates
                raw_samples: list[float] = []
                our_samples: list[float] = []
                envelope_samples: list[float] = []
                raw_rates, our_rates = [], []
                for _ in range(rounds):
                    raw_samples += await _timed_calls(raw.call, calls // rounds)
                    envelope_samples += await _timed_calls(raw.envelope_call, calls // rounds)
                    our_samples += await _timed_calls(ours_call, calls // rounds)
                    raw_rates.append(await _items_per_s(raw.items, items // rounds))
                    our_rates.append(await _items_per_s(ours_items, items // rounds))
        finally:
            await raw.close()
            await warm.close()
    ours_ms, raw_ms, envelope_ms = median_ms(our_samples), median_ms(raw_samples), median_ms(envelope_samples)
    ours_rate, raw_rate = statistics.median(our_rates), statistics.median(raw_rates)
    mb = 1 << 20
    return [
        {"metric": "call median vs in-process await (ms)", "hostel": ours_ms, "raw_grpc": extra["inproc_ms"],
         "ratio": ours_ms / extra["inproc_ms"], "target": "(for the record)"},
        {"metric": "throughput, 16 in flight (calls/s)", "hostel": extra["our_rps"], "raw_grpc": extra["raw_rps"],
         "ratio": extra["our_rps"] / extra["raw_rps"], "target": ">= 0.9"},
        *(
            {"metric": f"{size // mb} MB argument round trip (MB/s)", "hostel": extra[f"our_{size}"],
             "raw_grpc": extra[f"raw_{size}"], "ratio": extra[f"our_{size}"] / extra[f"raw_{size}"], "target": ">= 0.8"}
            for size in (mb, 8 * mb)
        ),
        {"metric": "slow stream (1 item / 20 ms): item latency (ms)", "hostel": extra["our_slow"],
         "raw_grpc": extra["raw_slow"], "ratio": extra["our_slow"] - extra["raw_slow"], "target": "within 1 ms"},
        *(
            {"metric": f"{size // mb} MB: vs raw with the worker's malloc settings (MB/s)",
             "hostel": extra[f"our_{size}"], "raw_grpc": extra[f"warm_{size}"],
             "ratio": extra[f"our_{size}"] / extra[f"warm_{size}"], "target": "(for the record)"}
            for size in (mb, 8 * mb)
        ),
        *(
            {"metric": f"{size // mb} MB: vs that raw echo making a str at both ends (MB/s)",
             "hostel": extra[f"our_{size}"],
             "raw_grpc": extra[f"text_{size}"], "ratio": extra[f"our_{size}"] / extra[f"text_{size}"],
             "target": "(floor, for the record)"}
            for size in (mb, 8 * mb)
        ),
        {"metric": "throughput: hostel's messages on the raw server (calls/s)", "hostel": extra["envelope_rps"],
         "raw_grpc": extra["raw_rps"], "ratio": extra["envelope_rps"] / extra["raw_rps"],
         "target": "(floor, for the record)"},
        {"metric": "call median: hostel's messages on the raw server (ms)", "hostel": envelope_ms,
         "raw_grpc": raw_ms, "ratio": envelope_ms / raw_ms, "target": "(floor, for the record)"},
        {"metric": "call median (ms)", "hostel": ours_ms, "raw_grpc": raw_ms, "ratio": ours_ms / raw_ms,
         "target": "<= 1.25"},
        {"metric": "stream items/s", "hostel": ours_rate, "raw_grpc": raw_rate, "ratio": ours_rate / raw_rate,
         "target": ">= 5"},
    ]  # fmt: skip


async def _throughput(call: Any, n: int, in_flight: int = 16) -> float:
    async def worker() -> None:
        for _ in range(n // in_flight):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return (n // in_flight * in_flight) / (time.perf_counter() - start)


async def _throughputs(calls: Sequence[Any], n: int, rounds: int = 8) -> list[float]:
    """Calls/s with 16 in flight for each of ``calls``, in alternating rounds (so drift hits all alike); medians."""
    rates: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, into in zip(calls, rates, strict=True):
            into.append(await _throughput(call, n // 2))
    return [statistics.median(r) for r in rates]


async def _bandwidths(echoes: Sequence[Any], size: int, rounds: int = 15) -> list[float]:
    """MB/s of round trips of ``size`` bytes for each echo, in alternation (so drift hits all alike)."""
    samples: list[list[float]] = [[] for _ in echoes]
    for _ in range(rounds):
        for echo, into in zip(echoes, samples, strict=True):
            start = time.perf_counter()
            await echo(size)
            into.append(time.perf_counter() - start)
    return [2 * size / statistics.median(s) / (1 << 20) for s in samples]


async def _inprocess_ms(n: int) -> float:
    sys.path.insert(0, str(HERE.parent / "tests" / "providers" / "testprov"))
    from hostel_testprov import Config, TestProvider

    provider = TestProvider(Config())
    return median_ms(await _timed_calls(lambda: provider.echo(value=PAYLOAD), n))


def main() -> None:
    title = "calls and streams through hostel vs raw grpc.aio (Unix socket, another process)"
    run_cli(__doc__ or "", "calls", title, bench, calls=2000, items=20000)


if __name__ == "__main__":
    main()
