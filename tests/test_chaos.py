"""The chaos suite: a misbehaving provider, through `hostel run`, beside an innocent one called steadily.

Every row is one fault of ``hostel_chaosprov`` (tests/providers/chaosprov). Each asserts what the caller of
the faulty provider sees and the state it is left in, and that the innocent provider, called over HTTP every
20 ms throughout, had zero failed calls while the host's memory stayed bounded. docs/supervision.md has the
table of faults, what a user sees and the recovery times; ``HOSTEL_CHAOS_REPORT=path`` (bench/bench_chaos.py)
writes each row's figures there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import chaos_spec, hostel_pids, make_config, provider_spec, wait_until, worker_pids
from tests.served import free_port

# Host RSS may grow by this much over its idle size in any row (a 60 MB result is held once, JSON-encoded once).
HOST_RSS_BOUND_MB = 300
REPORT: list[dict[str, Any]] = []


def _rss_mb(pid: int, field_name: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field_name} for pid {pid}")


@dataclass
class Innocent:
    """Calls the innocent provider over HTTP every 20 ms, on its own thread, counting every outcome."""

    url: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.wait(0.02):
                started = time.perf_counter()
                try:
                    response = client.post(f"{self.url}/v1/providers/infer/greet", json={"name": "steady"})
                    if response.status_code == 200 and response.json() == "hi, steady":
                        self.ok += 1
                        self.latencies.append(time.perf_counter() - started)
                    else:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def stop(self) -> None:
        self._stop.set()


class Stack:
    """`hostel run` with the chaos provider and the innocent one."""

    def __init__(self, tmp: Path, home: Path) -> None:
        self.home = home
        config = make_config(
            tmp,
            specs={
                "inline/inference/testprov": provider_spec(),
                "inline/tool_runtime/chaos": chaos_spec(),
            },
            providers={
                "inference": [
                    {"provider_id": "infer", "provider_type": "inline::testprov", "config": {"greeting": "hi"}}
                ],
                "tool_runtime": [
                    {
                        "provider_id": "chaos",
                        "provider_type": "inline::chaos",
                        "limits": {"memory_mb": 300, "max_concurrent_calls": 16},
                    }
                ],
            },
            hostel={
                "restart": {"max_restarts": 100, "window_s": 60, "backoff_initial_s": 0.05, "backoff_max_s": 0.2},
                "probe_interval_s": 0.5,
                "probe_timeout_s": 0.5,
                "probe_failures": 3,
                "stop_grace_s": 2,
            },
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hostel", "run", str(config), "--port", str(self.port)],
            env={**os.environ, "HOSTEL_HOME": str(home), "HOSTEL_LOG": "info"},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        assert wait_until(self._up, timeout=300), self.log.read_text()[-5000:]
        self.idle_rss_mb = _rss_mb(self.proc.pid)

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-5000:]
        try:
            return httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def restart(self, provider_id: str) -> httpx.Response:
        """POST /v1/providers/{id}/restart with the run's admin token, as `hostel restart` sends it."""
        from hostel.gateway.admin import ADMIN_HEADER, admin_token_path

        token = admin_token_path(self.home, self.port).read_text().strip()
        return httpx.post(f"{self.url}/v1/providers/{provider_id}/restart", json={}, timeout=60,
                          headers={ADMIN_HEADER: token})  # fmt: skip

    def status(self, provider_id: str) -> dict[str, Any]:
        rows = httpx.get(f"{self.url}/v1/providers", timeout=10).json()["data"]
        return next(r for r in rows if r["provider_id"] == provider_id)

    def call(self, method: str, body: Any = None, timeout: float = 60) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/providers/chaos/{method}", json=body or {}, timeout=timeout)

    def ready_again(self, old_pid: int | None, timeout: float = 30) -> None:
        """Wait until the chaos provider is ready with a worker other than ``old_pid``."""
        assert wait_until(
            lambda: (row := self.status("chaos"))["state"] == "ready" and row["pid"] not in (None, old_pid),
            timeout=timeout,
            interval=0.02,
        ), self.status("chaos")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("chaos"), tmp_path_factory.mktemp("chaos-home"))
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
            running.proc.wait(timeout=60)
        if os.environ.get("HOSTEL_CHAOS_REPORT"):
            Path(os.environ["HOSTEL_CHAOS_REPORT"]).write_text(json.dumps(REPORT, indent=2) + "\n")


@pytest.fixture
def innocent(stack: Stack) -> Iterator[Innocent]:
    """The innocent provider, called throughout the row; afterwards: no failure, host memory bounded."""
    caller = Innocent(stack.url)
    thread = threading.Thread(target=caller.run, daemon=True)
    rows = len(REPORT)
    thread.start()
    yield caller
    caller.stop()
    thread.join(timeout=60)
    if len(REPORT) > rows and caller.latencies:
        latencies = sorted(caller.latencies)
        REPORT[-1]["innocent_calls"] = len(latencies)
        REPORT[-1]["innocent_p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 2)
        REPORT[-1]["innocent_p99_ms"] = round(latencies[int(len(latencies) * 0.99)] * 1000, 2)
    assert caller.failures == [], caller.failures[:5]
    assert caller.ok > 0
    grown = _rss_mb(stack.proc.pid) - stack.idle_rss_mb
    assert grown < HOST_RSS_BOUND_MB, f"host RSS grew {grown:.0f} MB"


def _record(fault: str, response: httpx.Response | None, state: str, recovery_s: float | None, **extra: Any) -> None:
    error = response.json().get("error") if response is not None and response.status_code != 200 else None
    REPORT.append(
        {
            "fault": fault,
            "http": response.status_code if response is not None else None,
            "error": error["type"] if error else None,
            "state_after": state,
            "recovery_s": None if recovery_s is None else round(recovery_s, 3),
            **extra,
        }
    )


def test_one_10mb_line_on_stderr(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    response = stack.call("stderr_line", {"megabytes": 10})
    assert response.json() == "written"
    assert stack.call("ping").json() == "pong" and stack.status("chaos")["pid"] == pid  # alive, same worker
    assert wait_until(lambda: "more bytes cut]" in stack.log.read_text(), timeout=10)
    _record("one 10 MB line on stderr", response, stack.status("chaos")["state"], None, note="cut at 16 KiB")


def test_binary_garbage_on_stdout_and_stderr(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    response = stack.call("garbage", {"kilobytes": 64})
    assert response.json() == "written" and stack.status("chaos")["pid"] == pid
    assert wait_until(lambda: "\\x1b[2J\\x1b]0;pwned\\x07" in stack.log.read_text(), timeout=10)
    assert "\x1b" not in stack.log.read_text()  # no terminal escape reaches the host's log raw
    _record("binary garbage on stdout and stderr", response, stack.status("chaos")["state"], None, note="escaped")


def test_a_stderr_flood_for_10s(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    response = stack.call("flood", {"seconds": 10})
    assert response.json() == "flooding"
    end = time.monotonic() + 10
    pings = 0
    while time.monotonic() < end:
        assert stack.call("ping").json() == "pong"  # the flooding provider keeps serving too
        pings += 1
        time.sleep(0.1)
    assert stack.status("chaos")["pid"] == pid
    assert wait_until(lambda: "lines of stderr dropped" in stack.log.read_text(), timeout=10)
    _record("stderr flood for 10 s", response, stack.status("chaos")["state"], None, note="rate-limited, counted")


def test_an_event_loop_blocked_for_15s_is_busy_not_hung(stack: Stack, innocent: Innocent) -> None:
    """Ten times the probe window of this suite (3 probes every 0.5 s), and past the worker's 10 s report."""
    pid = stack.status("chaos")["pid"]
    response = stack.call("block", {"seconds": 15})
    assert response.status_code == 200 and response.json() == "unblocked"
    assert stack.status("chaos")["pid"] == pid
    log = stack.log.read_text()
    assert "is busy: its event loop has been blocked" in log
    assert "event loop blocked for 10 s" in log and "in block" in log  # the worker says where, once
    _record("event loop blocked for 15 s", response, "ready", None, note="busy: logged with its stack, not killed")


def test_a_process_hung_in_a_c_call_holding_the_gil(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    started = time.monotonic()
    response = stack.call("hold_gil", {"seconds": 30})
    assert response.status_code == 503 and response.json()["error"]["type"] == "ProviderCrashedError"
    message = response.json()["error"]["message"]
    assert "liveness probes" in message and "its threads were at:" in message and "in hold_gil" in message
    stack.ready_again(pid)
    recovery = time.monotonic() - started
    assert "in hold_gil" in stack.status("chaos")["last_exit"]
    _record("a C call holding the GIL for 30 s", response, "ready", recovery, note="killed after 3 missed probes")


def test_sigterm_ignored_and_a_hanging_shutdown(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    assert stack.call("be_stubborn").json() == "stubborn"
    started = time.monotonic()
    response = stack.restart("chaos")  # a stop it will not obey
    assert response.status_code == 200 and response.json()["state"] == "ready" and response.json()["pid"] != pid
    # Rolling: the new worker serves at once; the old one gets its Shutdown, its grace, SIGTERM, then SIGKILL.
    assert wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=30)
    took = time.monotonic() - started
    _record("SIGTERM ignored, shutdown() hangs (then restarted)", response, "ready", took, note="SIGKILL after grace")


def test_a_forked_child_keeps_the_pipes_of_a_killed_worker(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    started = time.monotonic()
    response = stack.call("fork_and_die")
    assert response.status_code == 503 and response.json()["error"]["type"] == "ProviderCrashedError"
    assert "killed by SIGKILL" in response.json()["error"]["message"]
    assert response.headers["x-should-retry"] == "false"
    stack.ready_again(pid)
    recovery = time.monotonic() - started
    assert wait_until(lambda: len(worker_pids(str(stack.home))) == 2, timeout=10), worker_pids(str(stack.home))
    _record("forked child holds the pipes of a SIGKILLed worker", response, "ready", recovery, note="child killed")


def test_memory_leaked_past_the_limit(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    started = time.monotonic()
    response = stack.call("leak", {"megabytes_per_s": 50})
    assert response.status_code == 503 and "memory limit of 300 MB" in response.json()["error"]["message"]
    stack.ready_again(pid)
    recovery = time.monotonic() - started
    _record("memory leaked past limits.memory_mb", response, "ready", recovery, note="killed at 300 MB")


def test_os_exit_from_a_thread(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    started = time.monotonic()
    response = stack.call("exit_from_thread", {"code": 9})
    assert response.status_code == 503 and "exited with code 9" in response.json()["error"]["message"]
    stack.ready_again(pid)
    recovery = time.monotonic() - started
    _record("os._exit(9) from a thread", response, "ready", recovery)


def test_a_segfault(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    started = time.monotonic()
    response = stack.call("segfault")
    assert response.status_code == 503 and "killed by SIGSEGV" in response.json()["error"]["message"]
    stack.ready_again(pid)
    recovery = time.monotonic() - started
    _record("segfault", response, "ready", recovery)


def test_the_worker_closes_its_own_grpc_server(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    started = time.monotonic()
    response = stack.call("close_server")
    assert response.status_code == 503
    stack.ready_again(pid)
    recovery = time.monotonic() - started
    assert "liveness probes" in stack.status("chaos")["last_exit"]
    _record("the worker closes its own gRPC server", response, "ready", recovery, note="killed by the probe")


def test_a_60mb_result(stack: Stack, innocent: Innocent) -> None:
    pid = stack.status("chaos")["pid"]
    response = stack.call("big_result", {"megabytes": 60})
    assert response.status_code == 200 and len(response.json()) == 60 << 20
    assert stack.status("chaos")["pid"] == pid
    _record("a 60 MB result", response, "ready", None, note="delivered")


def test_an_endless_stream_whose_reader_stopped(stack: Stack, innocent: Innocent) -> None:
    pid = stack.restart("chaos").json()["pid"]  # a fresh worker
    worker_before = _rss_mb(pid)
    body = json.dumps({"size": 65536}).encode()
    with socket.create_connection(("127.0.0.1", stack.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(
            b"POST /v1/providers/chaos/endless HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        time.sleep(10)  # the client holds the stream open and reads nothing
        grown = _rss_mb(pid) - worker_before
        assert stack.call("ping").json() == "pong"
    assert grown < 32, f"worker RSS grew {grown:.0f} MB"
    assert stack.status("chaos")["pid"] == pid
    _record("an endless stream whose reader stopped (10 s)", None, "ready", None, worker_rss_growth_mb=round(grown))


def test_a_dependency_called_in_a_tight_loop(stack: Stack, innocent: Innocent) -> None:
    response = stack.call("hammer", {"seconds": 5, "concurrency": 64})
    outcome = response.json()
    assert response.status_code == 200 and outcome["ok"] > 0
    assert outcome["failed"] > 0  # past its 16 deps calls in flight, its own calls are refused, no one else's
    _record("a dependency called in a tight loop (64 at once)", response, "ready", None, **outcome)


def test_a_neighbours_shutdown_called_through_deps(stack: Stack, innocent: Innocent) -> None:
    infer = stack.status("infer")["pid"]
    response = stack.call("neighbour_shutdown")
    assert response.status_code == 403 and response.json()["error"]["type"] == "PermissionError"
    assert "'shutdown' is not an API method" in response.json()["error"]["message"]
    assert stack.status("infer")["pid"] == infer and stack.status("infer")["state"] == "ready"
    _record("a neighbour's shutdown() called through deps", response, "ready", None, note="refused")


def test_the_host_stops_within_its_grace_and_leaves_nothing(stack: Stack) -> None:
    assert stack.call("be_stubborn").json() == "stubborn"
    pids = [r["pid"] for r in httpx.get(f"{stack.url}/v1/providers").json()["data"]]
    started = time.monotonic()
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=60) == 0
    took = time.monotonic() - started
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert wait_until(lambda: not hostel_pids(str(stack.home)), timeout=10)
    _record("host SIGTERM with a stubborn worker", None, "stopped", took, note="grace 2 s + kill allowance")
