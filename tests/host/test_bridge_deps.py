"""The Llama Stack bridge's half that needs no Llama Stack: a bridged provider's deps served in process by
the server's objects, across event loops (the host on its own loop thread, as in a server), through a real
worker and the real callback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from hostel import Host
from hostel.bridge._deps import ServerApis
from hostel.bridge._loop import LoopThread, serving_loop_here
from hostel.bridge._shared import bridge_plan
from hostel.config.plan import load_plan
from hostel.errors import ConfigError
from tests.conftest import make_config, provider_spec

SPECS = {
    "inline/vector_io/store": provider_spec(
        module="hostel_testprov.store", config_class="hostel_testprov.store.StoreConfig", api_dependencies=["inference"]
    ),
}
PROVIDERS = {"vector_io": [{"provider_id": "store", "provider_type": "inline::store"}]}
PROVIDER_DATA: ContextVar[Any] = ContextVar("provider_data", default=None)


class Greeting(BaseModel):
    name: str


class ServerInference:
    """Stands for a server's inference router: bound to the loop that serves requests."""

    def __init__(self) -> None:
        self.loops: set[int] = set()
        self.routing_table = object()  # the server's own object, not a method: it stays in the server

    async def greet(self, name: Greeting | str) -> str:
        self.loops.add(id(asyncio.get_running_loop()))
        return f"server greets {name}"

    async def count(self, n: int) -> AsyncIterator[int]:  # an async generator method, called without await
        for i in range(n):
            self.loops.add(id(asyncio.get_running_loop()))
            yield i

    async def provider_data(self) -> Any:
        return PROVIDER_DATA.get()

    async def fail(self, message: str) -> None:
        raise ValueError(message)


class FakeBridge:
    serving_loop: asyncio.AbstractEventLoop | None = None


@pytest.fixture
async def bridged(tmp_path: Path) -> AsyncIterator[tuple[Host, LoopThread, ServerInference]]:
    inference = ServerInference()
    bridge = FakeBridge()
    bridge.serving_loop = asyncio.get_running_loop()
    external = ServerApis({"inference": inference}, lambda: bridge, PROVIDER_DATA, asyncio.get_running_loop())
    config = make_config(tmp_path, specs=SPECS, providers=PROVIDERS)
    plan = bridge_plan(str(config), external.apis, [], external.methods())
    thread = LoopThread("hostel-test")

    async def make() -> Host:
        return Host(plan, external=external)

    host = await thread.run(make)
    await thread.run(host.start)
    try:
        yield host, thread, inference
    finally:
        await thread.run(host.stop)
        thread.close()


async def test_deps_are_served_by_the_servers_objects_on_the_servers_loop(bridged: Any) -> None:
    host, thread, inference = bridged
    store = host.provider("store")
    assert await thread.run(lambda: store.greet_through_inference(name="dep")) == "server greets dep"
    assert await thread.run(lambda: store.stream_through_inference(n=50)) == list(range(50))
    assert inference.loops == {id(asyncio.get_running_loop())}  # never the host's loop
    assert await thread.run(store.inference_error) == "ValueError: from inference"


async def test_deps_have_the_server_objects_methods_and_none_of_its_other_attributes(bridged: Any) -> None:
    """As in process, ``hasattr`` finds the router's methods; unlike in process, not its other attributes (OGX's
    interactions provider looks for ``routing_table`` and has a path for when there is none)."""
    host, thread, _ = bridged
    store = host.provider("store")
    found = await thread.run(lambda: store.inference_has(names=["greet", "count", "routing_table", "no_such"]))
    assert found == [True, True, False, False]


async def test_provider_data_is_set_in_the_servers_context_for_the_dependency(bridged: Any) -> None:
    host, thread, _ = bridged
    store = host.provider("store", provider_data={"api_key": "k"})
    assert await thread.run(store.provider_data_seen_by_inference) == {"api_key": "k"}


def test_a_dependency_on_an_external_api_needs_no_provider_for_it(tmp_path: Path) -> None:
    config = make_config(tmp_path, specs=SPECS, providers=PROVIDERS)
    with pytest.raises(ConfigError, match="needs API 'inference'"):
        load_plan(config)
    plan = load_plan(config, external_apis=frozenset({"inference"}))
    assert plan.providers[0].worker.dependency_apis == ("inference",) and plan.providers[0].policy.dependencies == ()


def test_the_bridge_config_passes_a_launcher_through_to_the_plan(tmp_path: Path) -> None:
    from hostel.bridge.config import BridgeConfig

    class ToolRuntimeConfig(BridgeConfig):
        api = "tool_runtime"

    bridged = ToolRuntimeConfig(
        provider_type="inline::boxed", launcher="container", container_image="registry.example/boxed:1",
        external_providers_dir=str(tmp_path / "providers.d"), limits={"memory_mb": 64, "cpus": 0.5},
    )  # fmt: skip
    spec = {"module": "hostel_testprov", "config_class": "hostel_testprov.Config"}
    make_config(tmp_path, specs={"inline/tool_runtime/boxed": spec})  # writes providers.d
    plan = load_plan(bridged.run_config("boxed")).provider("boxed")
    assert (plan.worker.launcher, plan.worker.container_image, plan.worker.memory_mb, plan.worker.cpus) == (
        "container", "registry.example/boxed:1", 64, 0.5,
    )  # fmt: skip


def test_a_bridge_config_takes_every_key_of_a_provider_entry_and_names_a_misspelt_one(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from hostel.bridge.config import BridgeConfig

    class ToolRuntimeConfig(BridgeConfig):
        api = "tool_runtime"

    bridged = ToolRuntimeConfig(
        provider_type="inline::boxed", external_providers_dir=str(tmp_path / "providers.d"),
        env={"TIKTOKEN_CACHE_DIR": "/cache", "PLAIN": None}, replicas=2, zygote=False,
    )  # fmt: skip
    make_config(tmp_path, specs={"inline/tool_runtime/boxed": {"module": "hostel_testprov"}})
    plan = load_plan(bridged.run_config("boxed"), environ={"PLAIN": "yes"}).provider("boxed")
    assert dict(plan.worker.env) == {"TIKTOKEN_CACHE_DIR": "/cache", "PLAIN": "yes"}
    assert (plan.policy.replicas, plan.worker.zygote) == (2, False)
    with pytest.raises(ValidationError, match=r"unknown key\(s\) 'replica' \(did you mean 'replicas'\?\)"):
        ToolRuntimeConfig(provider_type="inline::boxed", replica=2)


def test_a_storage_section_reaches_every_provider_plan(tmp_path: Path) -> None:
    config = make_config(tmp_path, specs=SPECS, providers=PROVIDERS)
    raw = {**yaml.safe_load(config.read_text()), "external_providers_dir": str(tmp_path / "providers.d")}
    backends = {"kv_default": {"type": "kv_sqlite", "db_path": str(tmp_path / "kv.db")}}
    raw["storage"] = {"backends": backends, "stores": {"metadata": {"backend": "kv_default"}}}
    plan = load_plan(raw, external_apis=frozenset({"inference"}))
    assert plan.providers[0].worker.storage == {"backends": backends}
    raw["storage"] = {"backends": {"kv_default": {"db_path": "x"}}}
    with pytest.raises(ConfigError, match=r"storage\.backends: must map each backend name to its config with a `type`"):
        load_plan(raw, external_apis=frozenset({"inference"}))


def test_a_bridged_config_class_name_holds_the_api_and_the_type() -> None:
    from hostel.bridge.mirror import _decode, config_class_name

    name = config_class_name("vector_io", "inline::sqlite-vec")
    assert name.isidentifier() and _decode(name) == ("vector_io", "inline::sqlite-vec")


def test_a_request_that_crashed_the_worker_is_not_sent_again_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """The openai and llama-stack-client libraries retry a 5xx twice: behind a server the bridge holds it back."""
    import io

    from hostel.bridge import _crashes
    from hostel.errors import ProviderCrashedError

    crashes = _crashes.CrashedRequests("p")
    key = _crashes.fingerprint("m", (Greeting(name="a"),), {"file": io.BytesIO(b"x" * 10)}, {"k": 1})
    assert key == _crashes.fingerprint("m", ({"name": "a"},), {"file": io.BytesIO(b"x" * 10)}, {"k": 1})
    assert key != _crashes.fingerprint("m", ({"name": "a"},), {"file": io.BytesIO(b"x" * 10)}, {"k": 2})
    assert crashes.refused(lambda: pytest.fail("no fingerprint is taken while nothing crashed")) is None
    crashes.remember(key, ProviderCrashedError(provider_id="p", exit_code=7, signal=None, pid=41))
    assert crashes.refused(lambda: "another request") is None
    refused = crashes.refused(lambda: key)
    assert refused is not None and "this same request crashed its worker [pid 41]" in str(refused)
    assert "exited with code 7" in str(refused)
    later = _crashes.time.monotonic() + _crashes.MEMORY_S + 1
    monkeypatch.setattr(_crashes.time, "monotonic", lambda: later)
    assert crashes.refused(lambda: key) is None  # a minute on, it may run again


def test_the_server_sees_what_the_provider_raised_and_hostels_errors_as_http_errors() -> None:
    """What a bridged provider raised is raised again in the server as its own type (or its nearest base the
    server has), so the server maps it to HTTP as in process; hostel's own errors become the server's FastAPI
    HTTPException too, which it answers with their status and headers and no traceback."""
    import sys

    from starlette.exceptions import HTTPException

    from hostel.bridge._impl import for_server
    from hostel.errors import ProviderBusyError, ProviderCrashedError, RemoteError

    class FileGoneError(LookupError):
        status_code = 404

    FileGoneError.__module__, FileGoneError.__qualname__ = __name__, "FileGoneError"
    sys.modules[__name__].FileGoneError = FileGoneError  # type: ignore[attr-defined]

    def remote(type_name: str, bases: tuple[str, ...], status: int | None = None) -> RemoteError:
        return RemoteError(provider_id="p", method="m", type_name=type_name, message="no", bases=bases,
                           status_code=status, remote_traceback="Traceback: in the worker")  # fmt: skip

    try:
        own = for_server(remote(f"{__name__}.FileGoneError", ("LookupError", "Exception"), 404))
        assert isinstance(own, FileGoneError) and str(own) == "no" and own.status_code == 404  # type: ignore[attr-defined]
        assert "in the worker" in "".join(getattr(own, "__notes__", []))
        subclass = for_server(
            remote("pkg.errors.InvalidParameterError", ("pkg.errors.Base", "ValueError", "Exception"))
        )
        assert isinstance(subclass, ValueError) and type(subclass).__name__ == "InvalidParameterError"
        assert isinstance(for_server(remote("PermissionError", ("OSError", "Exception"))), PermissionError)
        crash = for_server(ProviderCrashedError(provider_id="p", exit_code=7, signal=None, pid=3))
        assert isinstance(crash, HTTPException) and isinstance(crash, ProviderCrashedError)
        assert crash.status_code == 503 and crash.headers == {"x-should-retry": "false"} and "code 7" in crash.detail
        busy = for_server(ProviderBusyError("busy", provider_id="p"))
        assert isinstance(busy, HTTPException) and busy.headers == {"Retry-After": "1"} and busy.status_code == 503
    finally:
        del sys.modules[__name__].FileGoneError  # type: ignore[attr-defined]


async def test_the_bridge_runs_hostel_on_the_loop_uvicorns_lifespan_serves_from() -> None:
    """OGX 1.x builds providers in uvicorn's lifespan, on the loop it then serves from; elsewhere (a Llama Stack
    server's temporary loop, a script) the bridge must take a loop thread of its own."""
    from uvicorn.config import Config
    from uvicorn.lifespan.on import LifespanOn

    seen: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] == "lifespan.startup":
            seen.append(serving_loop_here())
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    lifespan = LifespanOn(Config(app, lifespan="on"))
    await lifespan.startup()
    await lifespan.shutdown()
    assert seen == [True]
    assert not serving_loop_here()
    assert not await asyncio.to_thread(lambda: asyncio.run(_here()))


async def _here() -> bool:
    return serving_loop_here()
