"""Pure logic, tested directly: env substitution, routing by model, dependency order, the lock's round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from hostel.config import ModelEntry
from hostel.config.envsubst import substitute
from hostel.config.order import order_plans
from hostel.config.plan import load_plan
from hostel.envs.lock import LockedProvider, Lockfile, read_lock, write_lock
from hostel.errors import ConfigError, RoutingError
from hostel.router import ApiRouter
from tests.conftest import make_config, provider_spec


def test_env_substitution_as_llama_stack_writes_it() -> None:
    missing: list[tuple[str, str]] = []
    tree = {
        "url": "${env.URL:=http://localhost}",
        "key": "${env.KEY}",
        "debug": "${env.DEBUG:+on}",
        "items": ["a-${env.NAME}-b", 3],
        "absent": "${env.NOPE}",
    }
    out = substitute(tree, {"KEY": "k", "NAME": "x", "DEBUG": ""}, lambda path, name: missing.append((path, name)))
    assert out == {"url": "http://localhost", "key": "k", "debug": "", "items": ["a-x-b", 3], "absent": ""}
    assert missing == [("absent", "NOPE")]
    assert substitute({"u": "${env.URL:=d}"}, {"URL": "set"}, lambda *_: None) == {"u": "set"}


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []

    async def call(self, provider_id: str, method: str, args: Any, kwargs: Any, **options: Any) -> Any:
        self.calls.append((provider_id, method, tuple(args), dict(kwargs)))
        return provider_id


async def test_routing_by_model_rewrites_it_to_the_providers_name() -> None:
    models = [
        ModelEntry(model_id="llama3", provider_id="ollama", provider_model_id="llama3.2:1b"),
        ModelEntry(model_id="gpt", provider_id="openai"),
    ]
    calls = _Recorder()
    router = ApiRouter(calls, "inference", ["ollama", "openai"], models)
    assert await router.chat(model="llama3", messages=[]) == "ollama"
    assert await router.chat(model="gpt") == "openai"
    assert await router.embed({"model": "llama3", "input": "x"}) == "ollama"  # one positional request object
    assert calls.calls[0] == ("ollama", "chat", (), {"model": "llama3.2:1b", "messages": []})
    assert calls.calls[2] == ("ollama", "embed", ({"model": "llama3.2:1b", "input": "x"},), {})
    with pytest.raises(RoutingError, match="no inference provider serves model 'ghost'"):
        await router.chat(model="ghost")
    with pytest.raises(RoutingError, match="name a model listed in the models table"):
        await router.list_things()
    single = ApiRouter(calls, "safety", ["guard"], [])
    assert await single.run_shield(shield_id="s") == "guard"  # one provider: it answers without a model


async def test_safety_calls_route_by_the_shields_table() -> None:
    from hostel.config import load_run_config
    from hostel.resources import ResourceStore, ResourceTables

    config = load_run_config(
        {"version": 2,
         "providers": {"safety": [{"provider_id": p, "provider_type": "inline::x"} for p in ("fms", "redact")]},
         "shields": [{"shield_id": "pii", "provider_id": "fms", "provider_shield_id": "pii-v2"},
                     {"shield_id": "ssn", "provider_id": "redact"}],
         "safety": {"default_shield_id": "ssn"}}
    )  # fmt: skip
    tables = ResourceTables(ResourceStore(None))
    tables.configure(config, {"safety": ["fms", "redact"]})
    calls = _Recorder()
    router = ApiRouter(calls, "safety", ["fms", "redact"], [], resources=tables)
    assert await router.run_shield(shield_id="ssn", messages=[]) == "redact"
    # run_moderation: its model names a shield (by id or provider id), sent on as the provider's id
    assert await router.run_moderation(input="x", model="pii") == "fms"
    assert await router.run_moderation({"input": "x", "model": "pii-v2"}) == "fms"
    assert await router.run_moderation(input="x") == "redact"  # safety.default_shield_id
    assert calls.calls[1][3] == {"input": "x", "model": "pii-v2"}
    assert calls.calls[2][2] == ({"input": "x", "model": "pii-v2"},)
    assert calls.calls[3][3] == {"input": "x", "model": "ssn"}
    with pytest.raises(RoutingError, match="no shield is moderation model 'nope'; shields: pii, ssn"):
        await router.run_moderation(input="x", model="nope")


def test_dependencies_start_first_and_cycles_are_named(tmp_path: Path) -> None:
    specs = {
        "inline/inference/testprov": provider_spec(),
        "inline/vector_io/store": provider_spec(api_dependencies=["inference"], optional_api_dependencies=["safety"]),
        "inline/agents/agent": provider_spec(api_dependencies=["vector_io", "inference"]),
    }
    providers = {
        "agents": [{"provider_id": "agent", "provider_type": "inline::agent"}],
        "vector_io": [{"provider_id": "store", "provider_type": "inline::store"}],
        "inference": [{"provider_id": "infer", "provider_type": "inline::testprov"}],
    }
    plan = load_plan(make_config(tmp_path, specs=specs, providers=providers))
    assert [p.provider_id for p in plan.providers] == ["infer", "store", "agent"]
    store = plan.provider("store")
    assert store.policy.dependencies == ("infer",)
    assert store.worker.dependency_apis == ("inference",)  # safety is not served
    infer = plan.provider("infer")
    cyclic = infer.with_worker(spec=dataclasses.replace(infer.spec, api_dependencies=("agents",)))
    with pytest.raises(ConfigError, match=r"API dependency cycle: .*infer"):
        order_plans("run.yaml", [cyclic, plan.provider("store"), plan.provider("agent")])


def test_a_lock_round_trips_and_refuses_a_changed_spec(tmp_path: Path) -> None:
    entry = LockedProvider(
        provider_id="t", provider_type="inline::x", python="3.11", inputs="abc", pins=("idna==3.7",),
        hashes={"idna==3.7": ("sha256:" + "1" * 64,)},
    )  # fmt: skip
    path = tmp_path / "hostel.lock"
    write_lock(path, {"t": entry})
    lock = read_lock(path)
    assert lock == Lockfile(path=path, providers={"t": entry})
    assert lock.pins_for("t", "abc") == entry
    with pytest.raises(ConfigError, match="changed since the lock"):
        lock.pins_for("t", "other-inputs")
    with pytest.raises(ConfigError, match="not in the lock"):
        lock.pins_for("ghost", "abc")
