"""What the Llama Stack bridge costs, measured with OGX 1.5 itself: the same providers in process, then bridged.

    python bench/bench_bridge.py [--json bench/results.json] [--requests 400] [--rate 100] [--items 5000]
                                 [--streams 7] [--file-mb 50] [--rounds 3]

Needs a Python 3.12 (OGX 1.5 does; `hostel python 3.12` finds it). Sets up, once, a venv under the work directory
with `ogx==1.5.0`, this repository's hostel and `bench/providers/ogxbench` (an OGX inference provider that answers
at once, so what is measured is the path to it), then runs two `ogx run` servers on 127.0.0.1 side by side,
--rounds times:

- in process: ogxbench by `module: hostel_ogxbench`, OGX's own `inline::localfs` files provider;
- bridged: `remote::hostel-inference` naming ogxbench, and `inline::localfs` by its own type with `module: hostel`.

and measures them over HTTP in turns, a block at a time (50 calls, a stream, a file: one server, then the other, who
goes first alternating), so that the machine's drift weighs on both alike, with the same clients: the latency of
two small non-streaming calls (httpx; p50, p99 of --requests of each sent --rate a second, one at a time), a chat
completion to ogxbench, which does no work (all it measures is the way to a provider and back: the bridge's whole
cost), and a file's metadata from OGX's own localfs (``GET /v1/files/{id}``, one row read from the server's SQL
store: a real provider's small call); the p50 of as many chat completions sent back to back (measured last, one
server after the other); streamed chunks per second (the median of --streams streams of --items chunks each,
server-sent events counted in the raw bytes) and how long the first of them took, and a file's upload and download
through the Files API in MB/s (a server's first upload apart, then the median of 7 of each; --file-mb: OGX itself
reads an upload into memory and caps it at 100 MiB). Streams and files are read straight off a socket
(``_request``): a real client runs on another machine, and here every cycle the client spends is one the server and
worker lack. Each figure is the median over the rounds; the ratio's range over the rounds (each round's bridged / in
process) says how much the machine moved them.

Each round also measures a bare crossing to another process, with nothing of hostel's or OGX's: a grpc.aio server in
its own process on a Unix socket (bench/_raw_server.py), a ~100-byte round trip on one long-lived stream on the same
schedules, and the file's size one way in 1 MiB messages. ``bound`` is the best ratio a bridge costing nothing but
that crossing could reach in the round (the in-process time plus one round trip, or plus the file's transfer after
the side that holds the file has all of it): a goal beyond it is beyond any bridge between two processes here, as
long as the provider's own work costs the same on both sides. It need not: a worker reuses freed memory
(``hostel.retain_freed_mb``) where the server, as users run it, maps every large buffer fresh. --server-malloc
worker gives both servers the workers' malloc settings, to tell that part from the bridge's.

Why a rate: OGX writes every chat completion to its inference store in a task of its own (on SQLite, with no write
queue). Back to back, a few hundred a second, those writes fall a second and more behind and keep threads busy that
the requests then wait for; the back-to-back p50 measures that backlog as much as the path to the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "scripts"))

from _common import run_cli
from ogx_suite_configs import STORAGE
from ogx_suites import python312, server

from hostel.config import HostelSettings
from hostel_sdk import _memory

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


def _latencies(call: Callable[[], httpx.Response], requests: int, rate: float) -> list[float]:
    """Seconds each of ``requests`` calls took, one at a time; with ``rate``, sent on a schedule of ``rate`` a
    second (one that is late goes at once), else each as soon as the last has answered."""
    latencies = []
    start = time.perf_counter()
    for i in range(requests):
        if rate:
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
        started = time.perf_counter()
        call().raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


async def _bare(*, requests: int, rate: float, file_mb: int) -> dict[str, float]:
    """What crossing to another process costs on this machine with nothing of hostel's or OGX's: a bare grpc.aio
    server in a process of its own, on a Unix socket. The round trip is one ~100-byte message each way on one
    long-lived stream (the cheapest grpc.aio has, what hostel's sessions use), on the same schedules as the chat
    completions; the transfer is ``file_mb`` 1 MiB messages one way (median of 3)."""
    from hostel_sdk import _grpc_env

    _grpc_env.prefer_epoll_polling()  # before bench_calls imports grpc: the bare pair polls as hostel's processes do
    from bench_calls import PAYLOAD, _Raw

    with tempfile.TemporaryDirectory(prefix="hostel-bench-bare-") as tmp:
        raw = _Raw(Path(tmp))
        stream = raw.echo_stream()
        try:

            async def round_trips(pace: float) -> list[float]:
                latencies = []
                start = time.perf_counter()
                for i in range(requests):
                    if pace:
                        await asyncio.sleep(max(0.0, start + i / pace - time.perf_counter()))
                    started = time.perf_counter()
                    await stream.write(PAYLOAD.encode())
                    await stream.read()
                    latencies.append(time.perf_counter() - started)
                return latencies

            await round_trips(0)
            paced, back_to_back = await round_trips(rate), await round_trips(0)
            transfers = []
            for _ in range(3):
                started = time.perf_counter()
                received = sum([len(chunk) async for chunk in raw.mebibytes(str(file_mb).encode())])
                transfers.append(file_mb / (time.perf_counter() - started))
                assert received == file_mb << 20, received
        finally:
            await stream.done_writing()
            await raw.close()
    return {
        "p50_ms": statistics.median(paced) * 1000,
        "b2b_p50_ms": statistics.median(back_to_back) * 1000,
        "transfer_mb_s": statistics.median(transfers),
    }


def _bounds(in_process: dict[str, float], bare: dict[str, float], file_mb: int) -> dict[str, float]:
    """The best bridged / in-process ratio a bridge could reach in this round if it cost nothing but one bare
    crossing (``_bare``) on top of the in-process path: a call adds a round trip; a download adds the file's
    transfer after the provider has read it (OGX's localfs reads the whole file, then answers: the first byte's
    time in process), an upload adds it after the server has read the upload (OGX reads it whole, then calls)."""
    transfer_s = file_mb / bare["transfer_mb_s"]
    download_s = file_mb / in_process["download_mb_s"]
    upload_s = file_mb / in_process["upload_mb_s"]
    return {
        "p50_ms": (in_process["p50_ms"] + bare["p50_ms"]) / in_process["p50_ms"],
        "file_p50_ms": (in_process["file_p50_ms"] + bare["p50_ms"]) / in_process["file_p50_ms"],
        "b2b_p50_ms": (in_process["b2b_p50_ms"] + bare["b2b_p50_ms"]) / in_process["b2b_p50_ms"],
        "download_mb_s": download_s / (in_process["download_first_byte_ms"] / 1000 + transfer_s),
        "upload_mb_s": upload_s / (upload_s + transfer_s),
    }


def _count_events(parts: Iterator[bytes]) -> tuple[int, float]:
    """The server-sent events carrying a chunk (``data: {...}``) in a response's raw bytes, counted in bytes rather
    than parsed line by line: on 2 cores the client shares the CPU with the server (and, bridged, the worker), and
    parsing each line in Python cost it 13-14 us a chunk, as much as the server's own work. Also when the first
    arrived (``time.perf_counter()``)."""
    marker = b"data: {"
    count, tail, first_at = 0, b"", 0.0
    for part in parts:
        data = tail + part
        found = data.count(marker)
        if found and not count:
            first_at = time.perf_counter()
        count += found
        tail = data[-(len(marker) - 1) :]  # a marker split across two parts is counted once, with the second
    return count, first_at


def _request(url: str, method: str, path: str, body: bytes = b"", content_type: str = "") -> Iterator[bytes]:
    """One HTTP/1.1 request on a connection of its own, its answer read straight off the socket: the response's
    body in the parts it arrives in (``ValueError`` for a status other than 200). For the streams and files: on 2
    cores the client takes CPU the server (and, bridged, the worker) then lack, where a real client runs elsewhere,
    and httpx took 2-3 times as much as this (16 against 7 us a streamed event, 0.3 against 0.1 ms a MB down, 1.8
    ms a MB up)."""
    host, _, port = url.removeprefix("http://").partition(":")
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head.encode() + b"\r\n")
        sock.sendall(body)
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        received = b""
        while (end := received.find(b"\r\n\r\n")) < 0:
            size = sock.recv_into(buffer)
            if not size:
                raise ValueError(f"{method} {path}: the server closed the connection before answering")
            received += view[:size]
        status = received.split(b" ", 2)[1]
        if status != b"200":
            raise ValueError(f"{method} {path} answered {status.decode()}: {received[end + 4 :][:500]!r}")
        if rest := received[end + 4 :]:
            yield rest
        while size := sock.recv_into(buffer):
            yield bytes(view[:size])


def _form(payload: bytes) -> tuple[bytes, str]:
    """A Files API upload of ``payload`` (a multipart form, as OGX's clients send it) and its content type."""
    boundary = "hostel-bench-" + os.urandom(8).hex()
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return b"".join((head, payload, f"\r\n--{boundary}--\r\n".encode())), f"multipart/form-data; boundary={boundary}"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99) - 1]


# Latency is taken in blocks of this many calls, each server's in turn.
_BLOCK = 50


def _blocks(requests: int) -> list[int]:
    """``requests`` (at least 1) as blocks of ``_BLOCK`` calls, the last one smaller if they do not divide."""
    whole, rest = divmod(max(1, requests), _BLOCK)
    return [_BLOCK] * whole + ([rest] if rest else [])


def _measure(urls: dict[bool, str], first: bool, *, requests: int, rate: float, items: int, streams: int,
             file_mb: int) -> dict[bool, dict[str, float]]:  # fmt: skip
    """Both servers (``urls``: bridged or not -> URL) measured in turns, a block at a time: a block of calls, a
    stream, a file to one, then the same to the other (``first`` starts; who does alternates), so that the
    machine's drift weighs on both alike (run one after the other, 15 minutes apart, the same in-process p50
    moved by a third)."""
    chat = "/v1/chat/completions"
    body = {"model": "bench/bench", "messages": [{"role": "user", "content": "hello"}]}
    stream = json.dumps({"model": "bench/bench", "stream": True, "messages": [{"role": "user", "content": str(items)}]})
    form, form_type = _form(os.urandom(1 << 20) * file_mb)
    found: dict[bool, dict[str, list[float]]] = {bridged: {} for bridged in urls}

    def turns(i: int) -> tuple[bool, bool]:
        return (first, not first) if i % 2 == 0 else (not first, first)

    def add(bridged: bool, metric: str, *values: float) -> None:
        found[bridged].setdefault(metric, []).extend(values)

    with httpx.Client(timeout=600) as a, httpx.Client(timeout=600) as b:
        clients = {first: a, not first: b}
        small, small_type = _form(b"hostel " * 128)
        calls: dict[bool, dict[str, Callable[[], httpx.Response]]] = {}
        for bridged, client in clients.items():
            url = urls[bridged]
            small_id = json.loads(b"".join(_request(url, "POST", "/v1/files", small, small_type)))["id"]
            calls[bridged] = {
                "latency": functools.partial(client.post, url + chat, json=body),
                "file_latency": functools.partial(client.get, f"{url}/v1/files/{small_id}"),
            }
            for call in calls[bridged].values():
                for _ in range(20):  # warm up: connections, the first call's imports, caches
                    call().raise_for_status()
        for i, block in enumerate(_blocks(requests)):
            for metric in ("latency", "file_latency"):
                for bridged in turns(i):
                    add(bridged, metric, *_latencies(calls[bridged][metric], block, rate))
        for i in range(streams):  # one stream lasts a fraction of a second: the median of a few, not one
            for bridged in turns(i):
                started = time.perf_counter()
                chunks, first_at = _count_events(_request(urls[bridged], "POST", chat, stream.encode(),
                                                          "application/json"))  # fmt: skip
                add(bridged, "stream", time.perf_counter() - started)
                add(bridged, "first_chunk", first_at - started)
                assert chunks == items, (chunks, items)
        # A server's first upload is the slowest (first use): apart, then the median of _FILES more. One upload
        # of 50 MB moved by a quarter from one to the next (page cache, the machine): 3 were too few to tell.
        for i in range(1 + _FILES):
            for bridged in turns(i):
                url = urls[bridged]
                started = time.perf_counter()
                file_id = json.loads(b"".join(_request(url, "POST", "/v1/files", form, form_type)))["id"]
                add(bridged, "upload", time.perf_counter() - started)
                started = time.perf_counter()
                received, first_byte_s = 0, 0.0
                for chunk in _request(url, "GET", f"/v1/files/{file_id}/content"):
                    first_byte_s = first_byte_s or time.perf_counter() - started
                    received += len(chunk)
                add(bridged, "download", time.perf_counter() - started)
                add(bridged, "first_byte", first_byte_s)
                assert received == file_mb << 20, (received, file_mb << 20)
        # Last, one server after the other: back to back, OGX's inference store falls behind (above), and what it
        # leaves running would weigh on whatever came after; the pause lets the first's backlog drain.
        for bridged in turns(0):
            add(bridged, "back_to_back", *_latencies(calls[bridged]["latency"], requests, 0))
            time.sleep(_DRAIN_S)
    return {bridged: _figures(runs, items, file_mb) for bridged, runs in found.items()}


# Uploads and downloads of each server measured after its first, in a round.
_FILES = 7

# How long a server's backlog of inference-store writes after calls sent back to back may take to drain.
_DRAIN_S = 10.0


def _figures(found: dict[str, list[float]], items: int, file_mb: int) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(found["latency"]) * 1000,
        "p99_ms": _p99(found["latency"]) * 1000,
        "file_p50_ms": statistics.median(found["file_latency"]) * 1000,
        "file_p99_ms": _p99(found["file_latency"]) * 1000,
        "b2b_p50_ms": statistics.median(found["back_to_back"]) * 1000,
        "stream_items_s": items / statistics.median(found["stream"]),
        "first_chunk_ms": statistics.median(found["first_chunk"]) * 1000,
        "first_upload_mb_s": file_mb / found["upload"][0],
        "upload_mb_s": file_mb / statistics.median(found["upload"][1:]),
        "download_mb_s": file_mb / statistics.median(found["download"][1:]),
        "download_first_byte_ms": statistics.median(found["first_byte"][1:]) * 1000,
    }


def _serve_and_measure(
    venv: Path, workdir: Path, first: bool, server_env: dict[str, str], **sizes: Any
) -> dict[bool, dict[str, float]]:
    """Both servers up at once (in process, bridged), measured in turns. Their run directories (config, log, what
    they stored: the uploaded files) are removed once they have stopped, unless the round failed (then the logs are
    there to read)."""
    run_dirs = []
    with contextlib.ExitStack() as stack:
        urls = {}
        for bridged in (False, True):
            run_dir = Path(tempfile.mkdtemp(prefix="bridged-" if bridged else "in-process-", dir=workdir))
            run_dirs.append(run_dir)
            config = run_dir / "config.yaml"
            config.write_text(yaml.safe_dump(_config(bridged), sort_keys=False))
            env = {**os.environ, **server_env, "STATE": str(run_dir / "state")}
            env["HOSTEL_HOME"] = str(workdir / "hostel-home")
            urls[bridged] = stack.enter_context(server(venv, config, env, run_dir / "server.log"))
        measured = _measure(urls, first, **sizes)
    for run_dir in run_dirs:  # ~200 MB a round: every run used to leave them behind
        shutil.rmtree(run_dir, ignore_errors=True)
    return measured


async def bench(
    *,
    requests: int = 400,
    rate: float = 100.0,
    items: int = 5000,
    streams: int = 7,
    file_mb: int = 50,
    rounds: int = 3,
    workdir: str = "",
    server_malloc: str = "",
) -> list[dict[str, Any]]:
    if server_malloc not in ("", "worker"):
        raise SystemExit(f"--server-malloc is '' or 'worker', not {server_malloc!r}")
    # "worker": both servers get the malloc settings hostel gives its workers, to tell the allocator's part.
    tunables = _memory.glibc_tunables(HostelSettings().retain_freed_mb << 20)
    server_env = {"GLIBC_TUNABLES": tunables} if server_malloc else {}
    where = Path(workdir or Path(tempfile.gettempdir()) / "hostel-bench-bridge")
    where.mkdir(parents=True, exist_ok=True)
    venv = _venv(where)
    sizes = {"requests": requests, "rate": rate, "items": items, "streams": streams, "file_mb": file_mb}
    runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    bounds, bares = [], []
    for round_ in range(rounds):  # in process and bridged side by side, each first every other round
        for bridged, figures in _serve_and_measure(venv, where, round_ % 2 == 1, server_env, **sizes).items():
            runs[bridged].append(figures)
        bares.append(await _bare(requests=requests, rate=rate, file_mb=file_mb))
        bounds.append(_bounds(runs[False][-1], bares[-1], file_mb))
    rows = []
    for metric, label, higher_better in (
        ("p50_ms", f"chat completion p50 (ms), {rate:g}/s", False),
        ("p99_ms", f"chat completion p99 (ms), {rate:g}/s", False),
        ("b2b_p50_ms", "p50 back to back (ms)", False),
        ("file_p50_ms", f"a file's metadata, OGX's localfs, p50 (ms), {rate:g}/s", False),
        ("file_p99_ms", f"a file's metadata, OGX's localfs, p99 (ms), {rate:g}/s", False),
        ("stream_items_s", "streamed chunks/s", True),
        ("first_chunk_ms", "stream's first chunk (ms)", False),
        ("upload_mb_s", f"upload {file_mb} MB (MB/s)", True),
        ("first_upload_mb_s", f"a server's first upload of {file_mb} MB (MB/s)", True),
        ("download_mb_s", f"download {file_mb} MB (MB/s)", True),
    ):
        in_process = statistics.median(run[metric] for run in runs[False])
        bridged = statistics.median(run[metric] for run in runs[True])
        each = sorted(b[metric] / i[metric] for i, b in zip(runs[False], runs[True], strict=True))
        bound = statistics.median(b[metric] for b in bounds) if metric in bounds[0] else "-"
        rows.append({"metric": label, "in_process": in_process, "bridged": bridged,
                     "bridged/in_process": bridged / in_process, "rounds": f"{each[0]:.2f}-{each[-1]:.2f}",
                     "bound": bound, "better": "higher" if higher_better else "lower"})  # fmt: skip
    for metric, label, higher_better in (
        ("p50_ms", f"bare crossing: round trip p50 (ms), {rate:g}/s", False),
        ("b2b_p50_ms", "bare crossing: round trip p50 back to back (ms)", False),
        ("transfer_mb_s", f"bare crossing: {file_mb} MB one way (MB/s)", True),
    ):
        values = sorted(b[metric] for b in bares)
        rows.append({"metric": label, "in_process": "-", "bridged": statistics.median(values),
                     "bridged/in_process": "-", "rounds": f"{values[0]:.2f}-{values[-1]:.2f}",
                     "bound": "-", "better": "higher" if higher_better else "lower"})  # fmt: skip
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
        server_malloc="",
    )


if __name__ == "__main__":
    main()
