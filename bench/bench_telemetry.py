"""Telemetry benchmark: what tracing costs a call, against the same host not tracing and a raw gRPC echo.

    python bench/bench_telemetry.py [--json bench/results.json] [--calls 2000]

Both hosts run the test provider in one process; tracing is process-wide once on (as OpenTelemetry is), so
the untraced rounds run first, then the traced ones, each beside a raw ``grpc.aio`` echo measured in the same
rounds to make the figures comparable (the ratio is hostel / raw). Traced: every call sampled, spans exported
over OTLP/HTTP to a receiver on 127.0.0.1 (tests/otlp.py), the worker tracing too.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import median_ms, run_cli
from bench_calls import PAYLOAD, _Raw, _throughput, _timed_calls

from hostel import Host
from tests.conftest import make_config
from tests.otlp import Receiver


async def _measure(host: Host, raw: _Raw, calls: int, rounds: int = 6) -> dict[str, float]:
    provider = host.provider("t")

    async def ours() -> None:
        await provider.echo(value=PAYLOAD)

    await _timed_calls(ours, 200)
    await _timed_calls(raw.call, 200)
    ours_ms, raw_ms, ours_rps, raw_rps = [], [], [], []
    for _ in range(rounds):
        ours_ms.append(median_ms(await _timed_calls(ours, calls // rounds)))
        raw_ms.append(median_ms(await _timed_calls(raw.call, calls // rounds)))
        ours_rps.append(await _throughput(ours, calls // 2))
        raw_rps.append(await _throughput(raw.call, calls // 2))
    return {
        "ms": statistics.median(ours_ms),
        "raw_ms": statistics.median(raw_ms),
        "rps": statistics.median(ours_rps),
        "raw_rps": statistics.median(raw_rps),
    }


async def bench(calls: int = 2000) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        raw = _Raw(tmp)
        receiver = Receiver()
        try:
            off_config = make_config(tmp / "off", hostel={"telemetry": {"enabled": False}})
            async with Host.from_config(off_config) as host:
                off = await _measure(host, raw, calls)
            on_config = make_config(tmp / "on", hostel={"telemetry": {"endpoint": receiver.endpoint}})
            async with Host.from_config(on_config) as host:
                on = await _measure(host, raw, calls)
            spans = len(receiver.spans)
        finally:
            await raw.close()
            receiver.close()
    rows = []
    for name, figures in (("not tracing", off), ("tracing, every call sampled", on)):
        rows.append(
            {
                "host": name,
                "call median (ms)": figures["ms"],
                "raw median (ms)": figures["raw_ms"],
                "ratio": figures["ms"] / figures["raw_ms"],
                "calls/s, 16 in flight": figures["rps"],
                "raw calls/s": figures["raw_rps"],
                "rps ratio": figures["rps"] / figures["raw_rps"],
            }
        )
    rows.append({**dict.fromkeys(rows[0], ""), "host": f"(spans received while tracing: {spans})"})
    return rows


if __name__ == "__main__":
    run_cli(__doc__ or "", "telemetry", "telemetry", bench, calls=2000)
