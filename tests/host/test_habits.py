"""Real providers' habits, through ``hostel run`` as a user runs it: providers that fork, block their event loop,
print, raise their own errors and check their own upstream (tests/providers/habitprov). Each works as it would
in a plain Python process or in-process under Llama Stack."""

from __future__ import annotations

import concurrent.futures
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, hostel_processes, make_config, wait_until
from tests.served import Served

HABITPROV = REPO / "tests" / "providers" / "habitprov"


def habit_spec() -> dict[str, Any]:
    return {
        "module": "hostel_habitprov",
        "config_class": "hostel_habitprov.Config",
        "pip_packages": [str(HABITPROV)],
        "api_dependencies": [],
    }


def habit_config(tmp_path: Path, *entries: dict[str, Any], **top: Any) -> Path:
    providers = [{"provider_type": "inline::habit", "config": {}, **entry} for entry in entries]
    return make_config(
        tmp_path, specs={"inline/tool_runtime/habit": habit_spec()}, providers={"tool_runtime": providers}, **top
    )


@pytest.fixture
def forking(tmp_path: Path, hostel_home: Path) -> Iterator[Served]:
    """The same provider forked from a zygote, spawned, and sandboxed (private root, from a zygote)."""
    config = habit_config(
        tmp_path,
        {"provider_id": "zygote"},
        {"provider_id": "spawned", "zygote": False},
        {"provider_id": "sandboxed", "sandbox": True},
    )
    served = Served(config, hostel_home)
    yield served
    served.stop()


def call(served: Served, provider: str, name: str, **args: Any) -> Any:
    response = served.post(f"/v1/providers/{provider}/{name}", args)
    assert response.status_code == 200, (provider, name, response.text)
    return response.json()


def test_a_provider_may_fork_children_as_multiprocessing_and_raw_fork_do(forking: Served) -> None:
    for provider in ("zygote", "spawned", "sandboxed"):
        pid = call(forking, provider, "pid")
        # Raw forks while the worker's gRPC server runs: with gRPC's at-fork handlers, 10-15 % died.
        assert call(forking, provider, "raw_forks", n=300) == {"ok": 300, "failed": 0}
        # The idiom whose exit SIGTERMs every child: hung, or shut the worker down, in about 1 call in 3.
        for _ in range(20):
            assert call(forking, provider, "pool_map", n=6) == [0, 1, 4, 9, 16, 25]
        for method in ("fork", "forkserver", "spawn"):  # semaphores in /dev/shm: a private one when sandboxed
            assert call(forking, provider, "pool_map", n=3, method=method) == [0, 1, 4]
            assert call(forking, provider, "process_pool", n=3, method=method) == [0, 1, 4]
        # A signal to a child is the child's: it dies of it, and the worker never hears of it.
        assert call(forking, provider, "signal_child") == "signal 15"
        assert call(forking, provider, "pid") == pid, provider
    assert "restarting" not in forking.log.read_text()


def test_busy_is_not_hung_but_a_stopped_worker_is_killed(tmp_path: Path, hostel_home: Path) -> None:
    """Default probe settings: a 25 s synchronous call in an async method completes (it used to be killed 11 s
    in); a SIGSTOPped worker, whose watchdog cannot answer either, is killed and replaced."""
    served = Served(habit_config(tmp_path, {"provider_id": "busy"}, {"provider_id": "stopped"}), hostel_home)
    try:
        busy_pid, stopped_pid = call(served, "busy", "pid"), call(served, "stopped", "pid")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            blocking = pool.submit(call, served, "busy", "block", seconds=25)
            os.kill(stopped_pid, signal.SIGSTOP)
            assert blocking.result(timeout=120) == "blocked 25s"
        assert call(served, "busy", "pid") == busy_pid
        assert wait_until(lambda: served.get("/v1/providers/stopped").json().get("pid") not in (None, stopped_pid), 60)
        log = served.log.read_text()
        assert "provider busy [pid" in log and "is busy: its event loop has been blocked" in log
        assert "event loop blocked for 10 s" in log and "in block" in log  # the worker says where, once
        assert f"provider stopped [pid {stopped_pid}] did not answer 3 liveness probes" in log
        assert f"provider busy [pid {busy_pid}] did not answer" not in log
    finally:
        served.stop()


def test_provider_output_and_exceptions_are_in_the_log(tmp_path: Path, hostel_home: Path) -> None:
    served = Served(habit_config(tmp_path, {"provider_id": "h"}), hostel_home)
    try:
        assert call(served, "h", "chatter", text="hello") == "said"
        missing = served.post("/v1/providers/h/lookup", {"key": "nope"})
        # A provider's own KeyError is its bug, not an unknown route: 500, as any other exception.
        assert missing.status_code == 500 and missing.json()["error"]["type"] == "KeyError"
        assert "Traceback" not in missing.text  # the reply never carries it
        assert wait_until(lambda: "RuntimeError: thread died: hello" in served.log.read_text(), 10)
    finally:
        served.stop()
    lines = served.log.read_text().splitlines()
    assert "INFO hostel.provider.h: print: hello" in lines
    assert any(line.startswith("INFO hostel.provider.h: INFO hostel_habitprov: log: hello") for line in lines)
    # A dying thread's traceback, whole, at WARNING.
    start = lines.index("WARNING hostel.provider.h: Exception in thread habit-thread:")
    end = lines.index("WARNING hostel.provider.h: RuntimeError: thread died: hello")
    assert all(line.startswith("WARNING hostel.provider.h: ") for line in lines[start : end + 1])
    # The provider's exception: logged once by the host, with its traceback from the worker.
    raised = [i for i, line in enumerate(lines) if "lookup() raised KeyError: 'nope' [call " in line]
    assert len(raised) == 1 and lines[raised[0]].startswith("WARNING hostel.calls: provider h: ")
    traceback = "\n".join(lines[raised[0] : raised[0] + 12])
    assert "hostel_habitprov/__init__.py" in traceback and "in lookup" in traceback
    assert any(line.startswith("INFO hostel.gateway: hostel serving 1 providers") for line in lines)


def test_providers_report_their_own_health_as_llama_stack_does(tmp_path: Path, hostel_home: Path) -> None:
    config = habit_config(
        tmp_path,
        {"provider_id": "up"},
        {"provider_id": "down", "config": {"upstream_ok": False}},
        {"provider_id": "later", "start": "lazy"},
    )
    served = Served(config, hostel_home)
    try:
        health = {p["provider_id"]: p["health"] for p in served.get("/v1/providers").json()["data"]}
        assert health["up"] == {"status": "OK"}
        assert health["down"] == {"status": "Error", "message": "upstream http://127.0.0.1:9/ is unreachable"}
        assert health["later"] == {"status": "OK"}  # not started: its state speaks for it, nothing is started
        assert served.get("/v1/providers/down").json()["health"]["status"] == "Error"
        assert served.get("/v1/health").status_code == 200  # every worker serves: hostel's own health
        assert served.get("/v1/providers").json()["data"][2]["state"] == "idle"
    finally:
        served.stop()


def _draws(served: Served, provider: str, workers: int) -> dict[int, float]:
    """pid -> the first value of the module-level generator, from ``workers`` distinct workers of ``provider``."""
    seen: dict[int, float] = {}
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in range(20):
            for draw in pool.map(lambda _: call(served, provider, "first_random", hold_s=0.3), range(workers)):
                seen[draw["pid"]] = draw["value"]
            if len(seen) == workers:
                break
    return seen


def _restarted(served: Served, provider: str, times: int) -> list[float]:
    """The draws of a provider's worker and of ``times`` restarts after SIGKILL; each is forked from the provider's
    zygote (its parent is not the host)."""
    values = []
    for _ in range(times + 1):
        draw = call(served, provider, "first_random")
        values.append(draw["value"])
        assert draw["parent"] != served.proc.pid, "a worker was spawned, not forked"
        os.kill(draw["pid"], signal.SIGKILL)
        assert wait_until(lambda pid=draw["pid"]: _serving_pid(served, provider) not in (None, pid), 60)
    return values


def _serving_pid(served: Served, provider: str) -> int | None:
    status = served.get(f"/v1/providers/{provider}").json()
    return status.get("pid") if status.get("state") == "ready" else None


def test_forked_workers_do_not_repeat_import_time_state(tmp_path: Path, hostel_home: Path) -> None:
    config = habit_config(
        tmp_path,
        {"provider_id": "fresh"},
        {"provider_id": "pair", "replicas": 2},
        {"provider_id": "preloaded", "zygote": "preload"},
    )
    served = Served(config, hostel_home)
    try:
        # Each provider's zygote is started for its first worker, which it forks (and every restart).
        zygotes = lambda: [p for p, (cmd, parent) in hostel_processes(str(hostel_home)).items()  # noqa: E731
                           if "hostel_sdk.zygote" in cmd and parent == served.proc.pid]  # fmt: skip
        assert wait_until(lambda: len(zygotes()) == 3, 60), zygotes()
        restarts = _restarted(served, "fresh", 3)  # the first worker and three restarts, forked from the zygote
        assert len(set(restarts)) == 4, restarts
        pair = _draws(served, "pair", 2)
        assert len(pair) == 2 and len(set(pair.values())) == 2, pair
        # Opting in imports the module once, in the zygote: every restart starts from the same draw.
        preloaded = _restarted(served, "preloaded", 2)
        assert len(set(preloaded[1:])) == 1, preloaded
    finally:
        served.stop()
