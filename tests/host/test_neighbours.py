"""A hostile provider beside a victim: what it cannot do to its neighbour, and what still works."""

from __future__ import annotations

import os
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


async def test_a_worker_sees_only_the_minimal_environment_and_its_own_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VICTIM_KEY", "victim-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-host")
    monkeypatch.setenv("SHARED_SETTING", "for-all")
    config = make_config(
        tmp_path,
        specs={"inline/inference/testprov": provider_spec(), "inline/tool_runtime/chaos": CHAOS},
        providers={
            "inference": [
                {
                    "provider_id": "victim",
                    "provider_type": "inline::testprov",
                    "config": {"greeting": "${env.VICTIM_KEY}"},
                },
            ],
            "tool_runtime": [
                {"provider_id": "evil", "provider_type": "inline::chaos", "env": {"OPENAI_API_KEY": None, "MODE": "x"}}
            ],
        },
        hostel={"pass_env": ["SHARED_SETTING"]},
    )
    async with Host.from_config(config) as host:
        seen = await host.provider("evil").environment()
        assert await host.provider("victim").greet(name="a") == "victim-secret, a"  # its secret came on stdin
    assert "VICTIM_KEY" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
    assert "victim-secret" not in seen.values()
    assert seen["OPENAI_API_KEY"] == "sk-host" and seen["MODE"] == "x" and seen["SHARED_SETTING"] == "for-all"
    assert seen["PATH"] == os.environ["PATH"] and seen["HOME"] == os.environ["HOME"]
    tmp = Path(seen["TMPDIR"])
    assert tmp.name == "tmp" and tmp.parent.name != "" and not tmp.exists()  # private, and gone with the worker
