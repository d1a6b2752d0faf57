"""Where a bridged call's time goes: OGX 1.5's chat completion timed step by step in the server and its worker.

    python bench/bench_bridge_steps.py [--json bench/results.json] [--requests 800] [--rate 100]

Three OGX 1.5 servers up at once, from bench_bridge.py's venv and configs (ogxbench answers at once):

- in process;
- bridged, its bridge answering every chat completion from memory (the worker's first answer, kept): what a
  bridged request costs without the trip to the worker;
- bridged, each step of the call through its worker session timed in the server and in the worker.

--requests chat completions each, --rate a second, one at a time, the servers in turns of 50. The steps are
stamped by ``bench/_steps/sitecustomize.py``, on the timed server's and its inference worker's ``PYTHONPATH``
(nothing of it is in hostel): it wraps the bridge's call, the session's, the worker's call, and the parsing and
serialization of the session's frames, as their modules are imported, and stamps them with CLOCK_MONOTONIC,
which both processes share. The wrappers add about a microsecond each. Prints each server's p50 and, for each
step, its median and quartiles over the calls (the steps' medians need not add up to the total's).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "scripts"))

from _common import run_cli
from bench_bridge import _blocks, _config, _latencies, _venv
from ogx_suites import server

HOOKS = HERE / "_steps"
METHOD = "openai_chat_completion"

# (label, from stamp, to stamp), in the order a call passes them; the stamps are bench/_steps/sitecustomize.py's.
STEPS = (
    ("the bridge to the session (supervision, the request encoded)", "bridge.in", "session.in"),
    ("the frame handed to gRPC's writing task", "session.in", "request.serialize"),
    ("the crossing to the worker (gRPC, its poller thread, its loop)", "request.serialize", "request.parse"),
    ("the worker parses the frame", "request.parse", "request.parsed"),
    ("the worker's session starts the call", "request.parsed", "call.in"),
    ("the call: the request rebuilt, the provider, its answer encoded", "call.in", "call.out"),
    ("the reply handed to gRPC's writing task", "call.out", "reply.serialize"),
    ("the crossing back", "reply.serialize", "reply.parse"),
    ("the server parses the reply", "reply.parse", "reply.parsed"),
    ("the reply handed to the waiting call", "reply.parsed", "session.out"),
    ("the session to the bridge (the answer decoded)", "session.out", "bridge.out"),
    ("the session's round trip", "session.in", "session.out"),
    ("the bridge's call, all of it", "bridge.in", "bridge.out"),
)


def _calls(stamps: list[tuple[int, str]]) -> list[dict[str, int]]:
    """Each bridged chat completion's stamps (from every process, one clock), by label: the first of each label
    between a ``bridge.in`` and the next ``bridge.out``; a call missing a step (another's interleaved) is left out."""
    calls, current = [], None
    for stamp, label in sorted(stamps):
        if label == "bridge.in":
            current = {label: stamp}
        elif current is not None:
            current.setdefault(label, stamp)
            if label == "bridge.out":
                calls.append(current)
                current = None
    needed = {label for _, start, end in STEPS for label in (start, end)}
    return [call for call in calls if needed <= call.keys()]


def _stamps(folder: Path, timeout_s: float = 30) -> list[tuple[int, str]]:
    """Ask the timed processes for their stamps and wait until both sides' have come (the server's and the
    worker's): all of them, whichever files they are in."""
    (folder / "dump").touch()
    deadline = time.monotonic() + timeout_s
    while True:
        stamps = []
        for path in folder.glob("steps-*.json"):  # each written whole (renamed into place)
            stamps += [(int(at), str(label)) for at, label in json.loads(path.read_text())["stamps"]]
        labels = {label for _, label in stamps}
        if {"bridge.in", "call.in"} <= labels or time.monotonic() > deadline:
            return stamps
        time.sleep(0.2)


def _row(measure: str, values: list[float], unit: str) -> dict[str, Any]:
    quartiles = statistics.quantiles(values, n=4)
    return {"measure": measure, "p50": statistics.median(values), "p25": quartiles[0], "p75": quartiles[2],
            "unit": unit}  # fmt: skip


async def bench(*, requests: int = 800, rate: float = 100.0, workdir: str = "") -> list[dict[str, Any]]:
    where = Path(workdir or Path(tempfile.gettempdir()) / "hostel-bench-bridge")
    where.mkdir(parents=True, exist_ok=True)
    venv = _venv(where)
    kinds = ("in-process", "canned", "timed")
    run_dirs = {kind: Path(tempfile.mkdtemp(prefix=f"steps-{kind}-", dir=where)) for kind in kinds}
    folder = run_dirs["timed"] / "stamps"
    folder.mkdir()
    modes = {"canned": f"canned:{METHOD}", "timed": f"timed:{METHOD}:{folder}"}
    latencies: dict[str, list[float]] = {kind: [] for kind in run_dirs}
    chat, body = "/v1/chat/completions", {"model": "bench/bench", "messages": [{"role": "user", "content": "hello"}]}
    with contextlib.ExitStack() as stack:
        urls = {}
        for kind, run_dir in run_dirs.items():
            config = _config(kind != "in-process")
            env = {**os.environ, "STATE": str(run_dir / "state"), "HOSTEL_HOME": str(where / "hostel-home")}
            if kind in modes:
                hooks = {"PYTHONPATH": str(HOOKS), "HOSTEL_BENCH_STEPS": modes[kind]}
                env.update(hooks)
                if kind == "timed":  # and the worker that serves the chat completions
                    config["providers"]["inference"][0]["config"]["env"] = hooks
            (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            urls[kind] = stack.enter_context(server(venv, run_dir / "config.yaml", env, run_dir / "server.log"))
        with httpx.Client(timeout=60) as client:
            for url in urls.values():
                for _ in range(20):  # warm up; the canned server keeps its first answer
                    client.post(url + chat, json=body).raise_for_status()
            for i, block in enumerate(_blocks(requests)):
                order = list(urls)[i % 3 :] + list(urls)[: i % 3]  # each goes first in turn
                for kind in order:
                    latencies[kind] += _latencies(
                        functools.partial(client.post, urls[kind] + chat, json=body), block, rate
                    )
        calls = _calls(_stamps(folder))
    if not calls:  # the run directories stay, for their logs
        raise SystemExit(f"no call's steps were recorded: see {run_dirs['timed'] / 'server.log'}")
    for run_dir in run_dirs.values():
        shutil.rmtree(run_dir, ignore_errors=True)
    in_process = statistics.median(latencies["in-process"])
    rows = [
        _row("chat completion, in process", [s * 1000 for s in latencies["in-process"]], "ms"),
        _row("chat completion, bridged, answering from memory", [s * 1000 for s in latencies["canned"]], "ms"),
        _row("chat completion, bridged, steps timed", [s * 1000 for s in latencies["timed"]], "ms"),
        {"measure": "answering from memory / in process", "p50": statistics.median(latencies["canned"]) / in_process,
         "p25": "-", "p75": "-", "unit": "x"},
        {"measure": "steps timed / in process", "p50": statistics.median(latencies["timed"]) / in_process,
         "p25": "-", "p75": "-", "unit": "x"},
    ]  # fmt: skip
    rows += [_row(label, [(call[end] - call[start]) / 1000 for call in calls], "us") for label, start, end in STEPS]
    rows.append({"measure": "calls timed", "p50": len(calls), "p25": "-", "p75": "-", "unit": ""})
    return rows


def main() -> None:
    title = "OGX 1.5: a bridged chat completion, step by step (in the server and its worker)"
    run_cli(__doc__ or "", "bridge_steps", title, bench, requests=800, rate=100.0, workdir="")


if __name__ == "__main__":
    main()
