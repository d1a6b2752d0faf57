"""The shared host of a multi-process server (``hostel.bridge.hub``) without a server: two "server processes"
(two attachments with their own server APIs) share one real hub process and one real worker; each one's deps calls
come back to it; errors cross as they were raised; the last one out stops the hub."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from hostel.bridge import _shared
from hostel.bridge._deps import ServerApis
from hostel.errors import MethodNotFoundError, RemoteError
from hostel_sdk._llama_stack import SERVER_CONTEXT_KEY
from tests.conftest import hub_pids, make_config, provider_spec, wait_until, worker_pids
from tests.host.test_bridge_deps import PROVIDER_DATA, PROVIDERS, FakeBridge, ServerInference

SPECS = {
    "inline/vector_io/store": provider_spec(
        module="hostel_testprov.store", config_class="hostel_testprov.store.StoreConfig", api_dependencies=["inference"]
    ),
}
METHODS = ["greet_through_inference", "stream_through_inference", "inference_error", "dep_keys", "no_such_method"]


async def _attach(raw: dict[str, Any], key: str) -> tuple[_shared.SharedHost, ServerApis, ServerInference]:
    inference = ServerInference()
    bridge = FakeBridge()
    bridge.serving_loop = asyncio.get_running_loop()
    apis = ServerApis(
        {"inference": inference}, lambda: bridge, PROVIDER_DATA, asyncio.get_running_loop(), key_prefix=f"{key}."
    )
    request = _shared.HubRequest(
        "vector_io", "store", raw, None, [], apis, 2**22, methods=METHODS, key=key,
    )  # fmt: skip
    shared = await _shared.attach(request)
    return shared, apis, inference


async def _call(attached: tuple[_shared.SharedHost, ServerApis, ServerInference], method: str, **kwargs: Any) -> Any:
    shared, apis, _ = attached
    data = {SERVER_CONTEXT_KEY: apis.enter_call()}
    return await shared.call("store", method, (), kwargs, timeout=60, provider_data=data)


async def test_two_server_processes_share_one_hub_and_each_gets_its_own_deps_calls(
    tmp_path: Path, hostel_home: Path
) -> None:
    raw = yaml.safe_load(make_config(tmp_path, specs=SPECS, providers=PROVIDERS).read_text())
    raw["external_providers_dir"] = str(tmp_path / "providers.d")
    before = set(hub_pids())
    first = await _attach(raw, "a")
    second = await _attach(raw, "b")
    hubs = set(hub_pids()) - before
    try:
        assert len(hubs) == 1 and len(worker_pids(str(hostel_home))) == 1
        assert first[0].status()[0].pid == second[0].status()[0].pid is not None
        assert await _call(first, "greet_through_inference", name="a") == "server greets a"
        assert await _call(second, "stream_through_inference", n=20) == list(range(20))
        # each server process's router served its own request's deps calls, and only those
        assert first[2].loops and second[2].loops
        assert await _call(second, "inference_error") == "ValueError: from inference"
        with pytest.raises(MethodNotFoundError):  # the bridge falls back on it (register_* ...): its kind crosses
            await _call(first, "no_such_method")
        with pytest.raises(RemoteError, match="greet_through_inference"):
            await _call(first, "greet_through_inference")  # no name: the worker's own TypeError, relayed
        await first[0].stop()  # one server process gone: the other's calls go on
        assert await _call(second, "greet_through_inference", name="b") == "server greets b"
    finally:
        await first[0].stop()
        await second[0].stop()
    assert wait_until(lambda: not (set(hub_pids()) & hubs), timeout=30)  # the last one out stopped it


async def test_a_provider_that_cannot_start_fails_each_server_process_with_the_hubs_reason(tmp_path: Path) -> None:
    specs = {"inline/vector_io/store": {**SPECS["inline/vector_io/store"], "module": "hostel_no_such_module"}}
    raw = yaml.safe_load(make_config(tmp_path, specs=specs, providers=PROVIDERS).read_text())
    raw["external_providers_dir"] = str(tmp_path / "providers.d")
    for key in ("a", "b"):
        with pytest.raises(Exception, match="hostel_no_such_module") as failed:
            await _attach(raw, key)
        assert type(failed.value).__module__ == "hostel.errors"
    assert not set(hub_pids()) & {p.pid for p in psutil.Process().children(recursive=True)}


async def test_a_hub_killed_is_started_again_by_the_next_call(tmp_path: Path, hostel_home: Path) -> None:
    """Calls in flight when the hub dies fail; its worker goes with it; the next call starts another hub."""
    raw = yaml.safe_load(make_config(tmp_path, specs=SPECS, providers=PROVIDERS).read_text())
    raw["external_providers_dir"] = str(tmp_path / "providers.d")
    before = set(hub_pids())
    attached = await _attach(raw, "a")
    shared = attached[0]
    try:
        assert await _call(attached, "greet_through_inference", name="a") == "server greets a"
        (hub,) = set(hub_pids()) - before
        worker = shared.status()[0].pid
        psutil.Process(hub).kill()
        for _ in range(100):  # the loss is seen on this test's loop
            if shared.status()[0].state == "restarting":
                break
            await asyncio.sleep(0.05)
        assert "hub) is gone" in str(shared.status()[0].last_exit)
        assert wait_until(lambda: not psutil.pid_exists(worker or 0), timeout=10)  # no orphaned worker
        assert await _call(attached, "greet_through_inference", name="again") == "server greets again"
        (new_hub,) = set(hub_pids()) - before
        assert new_hub != hub and shared.status()[0].pid not in (None, worker)
    finally:
        await shared.stop()
    assert wait_until(lambda: not (set(hub_pids()) - before), timeout=30)
