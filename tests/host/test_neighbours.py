"""A hostile provider beside a victim: what it cannot do to its neighbour, and what still works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostel import Host
from tests.conftest import REPO, make_config, provider_spec

CHAOS = {
    "module": "hostel_chaosprov",
    "config_class": "hostel_chaosprov.Config",
    "pip_packages": [str(REPO / "tests" / "providers" / "chaosprov")],
    "api_dependencies": ["inference"],
}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": CHAOS},
        providers={
            "inference": [{"provider_id": "victim", "provider_type": "inline::testprov"}],
            "tool_runtime": [{"provider_id": "evil", "provider_type": "inline::chaos"}],
        },
    )
    async with Host.from_config(config) as started:
        yield started


async def test_a_worker_cannot_call_or_stop_another_worker_through_its_socket(host: Host) -> None:
    victim = host.supervisor.slots["victim"].worker
    assert victim is not None
    socket = str(victim.socket_path)  # suppose the evil provider found it (same uid: it can list the directory)
    for method in ("Shutdown", "Describe", "CallUnary"):
        assert await host.provider("evil").poke_socket(path=socket, method=method) == "UNAUTHENTICATED"
    assert await host.provider("victim").greet(name="still") == "hello, still"
    assert host.supervisor.slots["victim"].worker is victim  # never restarted
