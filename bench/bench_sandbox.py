"""Sandbox benchmark: what `sandbox:` adds to a worker's start, in alternating rounds of the same run.

    python bench/bench_sandbox.py [--json bench/results.json] [--repeat 10]

Each round starts the test provider once without and once with `sandbox: true` (env cached: the worker
start alone, as bench/bench_supervisor.py measures it) and stops it. Then, with each config's zygote warm, a
restart forked from it (`host.restart`, a rolling one: the fork, the worker's start, its health check), over and
over: a sandboxed provider's zygote starts confined and each fork narrows the sandbox to its own directory.
"""

from __future__ import annotations

import asyncio
import statistics
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
from hostel_sdk._sandbox import landlock_abi
from tests.conftest import make_config


async def _start_ms(config: Path) -> float:
    host = Host.from_config(config)
    await host.build()
    begin = time.perf_counter()
    await host.start()
    took = (time.perf_counter() - begin) * 1000
    await host.stop()
    return took


async def _fork_ms(config: Path, repeat: int) -> float:
    """The median restart of a provider forked from its warm zygote."""
    async with Host.from_config(config) as host:
        launcher = host.supervisor.launchers.get("process")
        zygotes = getattr(launcher, "zygotes", None)
        deadline = time.monotonic() + 60
        while zygotes is not None and not zygotes.pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if zygotes is None or not zygotes.pids():
            raise SystemExit("no zygote warmed within 60 s: forks cannot be measured here")
        times = []
        for _ in range(repeat):
            begin = time.perf_counter()
            await host.restart("t")
            times.append((time.perf_counter() - begin) * 1000)
        return statistics.median(times)


async def bench(repeat: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-") as tmpdir:
        tmp = Path(tmpdir)
        plain = make_config(tmp / "plain")
        boxed = make_config(tmp / "boxed", hostel={"sandbox": True})
        await _start_ms(plain)  # builds the env once
        without, with_ = [], []
        for _ in range(repeat):
            without.append(await _start_ms(plain))
            with_.append(await _start_ms(boxed))
        fork_plain, fork_boxed = await _fork_ms(plain, repeat * 2), await _fork_ms(boxed, repeat * 2)
    a, b = statistics.median(without), statistics.median(with_)
    return [
        {"metric": "worker start, no sandbox (ms, median)", "value": a, "goal": "-"},
        {"metric": f"worker start, sandbox: true (Landlock ABI {landlock_abi()}) (ms)", "value": b, "goal": "-"},
        {"metric": "added by the sandbox (ms)", "value": b - a, "goal": "< 10"},
        {"metric": "restart forked from the zygote, no sandbox (ms, median)", "value": fork_plain, "goal": "-"},
        {"metric": "restart forked from the zygote, sandbox: true (ms)", "value": fork_boxed, "goal": "-"},
        {"metric": "added by the sandbox to a forked restart (ms)", "value": fork_boxed - fork_plain, "goal": "< 2"},
    ]


def main() -> None:
    run_cli(__doc__ or "", "sandbox", "Sandbox: worker start with and without", bench, repeat=10)


if __name__ == "__main__":
    main()
