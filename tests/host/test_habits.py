"""Real providers' habits, through ``hostel run`` as a user runs it: providers that fork, block their event loop,
print, raise their own errors and check their own upstream (tests/providers/habitprov). Each works as it would
in a plain Python process or in-process under Llama Stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, make_config
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
