"""What the Llama Stack bridge costs, measured with OGX 1.5 itself: the same providers in process, then bridged.

    python bench/bench_bridge.py [--json bench/results.json] [--requests 400] [--rate 100] [--items 5000]
                                 [--streams 7] [--file-mb 50] [--rounds 3]

Needs a Python 3.12 (OGX 1.5 does; `hostel python 3.12` finds it). Sets up, once, a venv under the work directory
with `ogx==1.5.0`, this repository's hostel and `bench/providers/ogxbench` (an OGX inference provider that answers
at once, so what is measured is the path to it), then runs `ogx run` on 127.0.0.1 in turns, --rounds times each:

- in process: ogxbench by `module: hostel_ogxbench`, OGX's own `inline::localfs` files provider;
- bridged: `remote::hostel-inference` naming ogxbench, and `inline::localfs` by its own type with `module: hostel`.

and measures over HTTP, with the same client every time: the latency of a small non-streaming chat completion
(p50, p99 of --requests sent --rate a second, one at a time; and the p50 of as many sent back to back, measured
last), streamed chunks per second (the median of --streams streams of --items chunks each, read
as server-sent events) and how long the first of them took, and a file's upload and download through the Files API
in MB/s (--file-mb; OGX itself reads an upload into memory and caps it at 100 MiB). Each figure is the median over
the rounds; the ratio's range over the rounds (each round's bridged / in process) says how much the machine moved
them.

Why a rate: OGX writes every chat completion to its inference store in a task of its own (on SQLite, with no write
queue). Back to back, a few hundred a second, those writes fall a second and more behind and keep threads busy that
the requests then wait for; the back-to-back p50 measures that backlog as much as the path to the provider.
"""

from __future__ import annotations

import os
import statistics
import subprocess
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
from ogx_suites import STORAGE, python312, server

REPO = HERE.parent
OGXBENCH = HERE / "providers" / "ogxbench"


def _venv(workdir: Path) -> Path:
    import uv

    venv = workdir / "venv"
    if not (venv / "bin" / "ogx").exists():
        python = python312()
        if python is None:
            raise SystemExit("OGX 1.5 needs a Python 3.12; hostel python 3.12 finds none")
        subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", python, str(venv)], check=True)
        subprocess.run(
            [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
             "ogx==1.5.0", str(OGXBENCH)],
            check=True,
        )  # fmt: skip
    # This checkout's hostel, every run (a kept venv must not measure an older one).
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "--reinstall-package", "hostel", str(REPO)],
        check=True,
    )  # fmt: skip
    return venv


def _config(bridged: bool) -> dict[str, Any]:
    files: dict[str, Any] = {
        "provider_id": "files",
        "provider_type": "inline::localfs",
        "config": {"storage_dir": "${env.STATE}/files",
                   "metadata_store": {"table_name": "files_metadata", "backend": "sql_default"}},
    }  # fmt: skip
    inference: dict[str, Any] = {"provider_id": "bench", "provider_type": "remote::ogxbench",
                                 "module": "hostel_ogxbench", "config": {}}  # fmt: skip
    if bridged:
        files["module"] = "hostel"
        inference = {
            "provider_id": "bench",
            "provider_type": "remote::hostel-inference",
            "module": "hostel",
            "config": {"provider_type": "remote::ogxbench", "provider_id": "bench", "module": "hostel_ogxbench",
                       "pip_packages": [str(OGXBENCH)]},
        }  # fmt: skip
    return {
        "version": 2,
        "distro_name": "bench-bridged" if bridged else "bench-in-process",
        "apis": ["inference", "files"],
        "providers": {"inference": [inference], "files": [files]},
        "storage": STORAGE,
        "registered_resources": {
            "models": [{"model_id": "bench", "provider_id": "bench", "provider_model_id": "bench", "model_type": "llm"}]
        },
        "server": {"host": "127.0.0.1"},
    }


def _latencies(client: httpx.Client, chat: str, body: dict[str, Any], requests: int, rate: float) -> list[float]:
    """Seconds each of ``requests`` chat completions took, one at a time; with ``rate``, sent on a schedule of
    ``rate`` a second (one that is late goes at once), else each as soon as the last has answered."""
    latencies = []
    start = time.perf_counter()
    for i in range(requests):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        started = time.perf_counter()
        client.post(chat, json=body).raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99) - 1]


def _measure(url: str, *, requests: int, rate: float, items: int, streams: int, file_mb: int) -> dict[str, float]:
    chat = f"{url}/v1/chat/completions"
    body = {"model": "bench/bench", "messages": [{"role": "user", "content": "hello"}]}
    with httpx.Client(timeout=600) as client:
        for _ in range(20):  # warm up: connections, the first call's imports, caches
            client.post(chat, json=body).raise_for_status()
        latencies = _latencies(client, chat, body, requests, rate)
        stream = {"model": "bench/bench", "stream": True, "messages": [{"role": "user", "content": str(items)}]}
        stream_times, first_chunks = [], []
        for _ in range(streams):  # one stream lasts a fraction of a second: the median of a few, not one
            started = time.perf_counter()
            chunks = 0
            with client.stream("POST", chat, json=stream) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        if not chunks:
                            first_chunks.append(time.perf_counter() - started)
                        chunks += 1
            stream_times.append(time.perf_counter() - started)
            assert chunks == items, (chunks, items)
        payload = os.urandom(1 << 20) * file_mb
        started = time.perf_counter()
        stored = client.post(f"{url}/v1/files", files={"file": ("bench.bin", payload)}, data={"purpose": "assistants"})
        upload_s = time.perf_counter() - started
        stored.raise_for_status()
        file_id = stored.json()["id"]
        started = time.perf_counter()
        with client.stream("GET", f"{url}/v1/files/{file_id}/content") as response:
            received = sum(len(chunk) for chunk in response.iter_bytes())
        download_s = time.perf_counter() - started
        assert received == len(payload), (received, len(payload))
        # Last: back to back, OGX's inference store falls behind (above), and what it leaves running would weigh
        # on whatever came after.
        back_to_back = _latencies(client, chat, body, requests, 0)
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _p99(latencies) * 1000,
        "b2b_p50_ms": statistics.median(back_to_back) * 1000,
        "stream_items_s": items / statistics.median(stream_times),
        "first_chunk_ms": statistics.median(first_chunks) * 1000,
        "upload_mb_s": file_mb / upload_s,
        "download_mb_s": file_mb / download_s,
    }


def _serve_and_measure(venv: Path, workdir: Path, bridged: bool, **sizes: Any) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(prefix="bridged-" if bridged else "in-process-", dir=workdir))
    config = run_dir / "config.yaml"
    config.write_text(yaml.safe_dump(_config(bridged), sort_keys=False))
    env = {**os.environ, "STATE": str(run_dir / "state"), "HOSTEL_HOME": str(workdir / "hostel-home")}
    with server(venv, config, env, run_dir / "server.log") as url:
        return _measure(url, **sizes)


async def bench(
    *,
    requests: int = 400,
    rate: float = 100.0,
    items: int = 5000,
    streams: int = 7,
    file_mb: int = 50,
    rounds: int = 3,
    workdir: str = "",
) -> list[dict[str, Any]]:
    where = Path(workdir or Path(tempfile.gettempdir()) / "hostel-bench-bridge")
    where.mkdir(parents=True, exist_ok=True)
    venv = _venv(where)
    sizes = {"requests": requests, "rate": rate, "items": items, "streams": streams, "file_mb": file_mb}
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for round_ in range(rounds):  # in process and bridged in turns, each first every other round
        for bridged in (False, True) if round_ % 2 == 0 else (True, False):
            runs[bridged].append(_serve_and_measure(venv, where, bridged, **sizes))
    rows = []
    for metric, label, higher_better in (
        ("p50_ms", f"chat completion p50 (ms), {rate:g}/s", False),
        ("p99_ms", f"chat completion p99 (ms), {rate:g}/s", False),
        ("b2b_p50_ms", "p50 back to back (ms)", False),
        ("stream_items_s", "streamed chunks/s", True),
        ("first_chunk_ms", "stream's first chunk (ms)", False),
        ("upload_mb_s", f"upload {file_mb} MB (MB/s)", True),
        ("download_mb_s", f"download {file_mb} MB (MB/s)", True),
    ):
        in_process = statistics.median(run[metric] for run in runs[False])
        bridged = statistics.median(run[metric] for run in runs[True])
        each = sorted(b[metric] / i[metric] for i, b in zip(runs[False], runs[True], strict=True))
        rows.append({"metric": label, "in_process": in_process, "bridged": bridged,
                     "bridged/in_process": bridged / in_process, "rounds": f"{each[0]:.2f}-{each[-1]:.2f}",
                     "better": "higher" if higher_better else "lower"})  # fmt: skip
    return rows


def main() -> None:
    title = "OGX 1.5: the same providers in process and through hostel's bridge (HTTP, one client)"
    run_cli(
        __doc__ or "",
        "bridge",
        title,
        bench,
        requests=400,
        rate=100.0,
        items=5000,
        streams=7,
        file_mb=50,
        rounds=3,
        workdir="",
    )


if __name__ == "__main__":
    main()
