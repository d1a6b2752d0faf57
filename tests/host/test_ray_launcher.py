"""The Ray launcher against a real local Ray cluster (``ray start --head``, started and stopped by these tests).

Workers run in Ray runtime_envs built with uv from the providers' own pins, reached over TCP with tokens;
callbacks come back over TCP; crashes are reported and restarted as for local workers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from hostel.config.plan import load_plan
from hostel.errors import ConfigError, ProviderCrashedError
from hostel.host import Host
from hostel_sdk._health import HealthStub
from hostel_sdk._wire import tls_channel
from tests import ray_cluster
from tests.conftest import EXAMPLES, make_config, provider_spec, wait_until
from tests.served import free_port

ray = pytest.importorskip("ray")

FAST_RESTART = {"restart": {"max_restarts": 5, "window_s": 60, "backoff_initial_s": 0.05, "backoff_max_s": 1}}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A one-node Ray cluster of our own; stopped by signalling the `ray start --block` process we started."""
    temp_dir = Path("/tmp") / f"hostel-ray-{os.getpid()}"  # Ray's socket paths must stay short
    head, address = ray_cluster.start_head(temp_dir)
    yield address
    ray_cluster.stop(head)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _ray_config(tmp_path: Path, address: str, providers: dict[str, list[dict[str, Any]]], **hostel: Any) -> Path:
    specs = {
        "inline/inference/testprov": provider_spec(),
        "inline/vector_io/store": provider_spec(
            module="hostel_testprov.store",
            config_class="hostel_testprov.store.StoreConfig",
            api_dependencies=["inference"],
        ),
        "inline/tool_runtime/testprov": provider_spec(),
    }
    settings = {**FAST_RESTART, "ray": {"address": address}, **hostel}
    return make_config(tmp_path, specs=specs, providers=providers, hostel=settings)


async def test_conflicting_pins_stay_isolated_on_ray(ray_address: str) -> None:
    plan = load_plan(EXAMPLES / "conflicting_pins" / "run.yaml").with_ray(ray_address)  # as `hostel run --ray`
    assert {p.worker.launcher for p in plan.providers} == {"ray"}
    async with Host(plan) as host:
        old, new = await host.provider("old").versions(), await host.provider("new").versions()
        assert old["idna"] == "2.10" and new["idna"].startswith("3.")
        assert "runtime_resources" in old["prefix"] and old["prefix"] != new["prefix"]  # Ray's envs, one each
        assert [x async for x in await host.provider("old").spell(word="ray")] == ["r", "a", "y"]


async def test_a_crash_on_ray_is_reported_and_restarted_and_deps_call_back_over_tcp(
    tmp_path: Path, ray_address: str
) -> None:
    providers = {
        "inference": [{"provider_id": "infer", "provider_type": "inline::testprov", "launcher": "ray"}],
        "vector_io": [{"provider_id": "store", "provider_type": "inline::store", "launcher": "ray"}],
        "tool_runtime": [{"provider_id": "local", "provider_type": "inline::testprov"}],
    }
    async with Host.from_config(_ray_config(tmp_path, ray_address, providers)) as host:
        store, infer = host.provider("store"), host.provider("infer")
        assert await store.greet_through_inference(name="ray") == "hello, ray"  # store -> host (TCP) -> infer
        assert await store.stream_through_inference(n=3) == [0, 1, 2]
        old_pid = (await infer.whoami())["pid"]
        with pytest.raises(ProviderCrashedError) as exc:
            await infer.crash(code=7)
        assert exc.value.exit_code == 7 and "about to crash" in exc.value.stderr_tail
        assert await host.provider("local").add(a=1, b=2) == 3  # the local provider never noticed
        assert (await host.provider("infer", timeout=60).whoami())["pid"] != old_pid
        assert {s.provider_id: s.restarts for s in host.status()} == {"infer": 1, "store": 0, "local": 0}
        assert await store.greet_through_inference(name="again") == "hello, again"


async def test_a_ray_worker_refuses_calls_without_its_token(tmp_path: Path, ray_address: str) -> None:
    providers = {"tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "launcher": "ray"}]}
    async with Host.from_config(_ray_config(tmp_path, ray_address, providers)) as host:
        channel = host.supervisor.providers["t"].channel
        assert channel is not None and not channel.target.startswith("unix")
        async with grpc.aio.insecure_channel(channel.target) as raw:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await HealthStub(raw).check("", timeout=10)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert await host.provider("t").greet(name="owner") == "hello, owner"


def _certificates(directory: Path) -> dict[str, str]:
    """A CA and one certificate it signed, for the name "hostel" (both sides present it: mutual TLS)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, capture_output=True, check=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=hostel test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=hostel")
    (directory / "ext.cnf").write_text("subjectAltName=DNS:hostel\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "node.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return {"cert_file": "node.pem", "key_file": "node.key", "ca_file": "ca.pem", "server_name": "hostel"}


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the test certificates")
async def test_mutual_tls_between_the_host_and_ray_workers(tmp_path: Path, ray_address: str) -> None:
    tls = _certificates(tmp_path)
    providers = {
        "inference": [{"provider_id": "infer", "provider_type": "inline::testprov", "launcher": "ray"}],
        "vector_io": [{"provider_id": "store", "provider_type": "inline::store", "launcher": "ray"}],
    }
    config = _ray_config(tmp_path, ray_address, providers, ray={"address": ray_address, "tls": tls})
    async with Host.from_config(config) as host:
        assert await host.provider("store").greet_through_inference(name="tls") == "hello, tls"  # both directions
        channel = host.supervisor.providers["infer"].channel
        assert channel is not None
        async with grpc.aio.insecure_channel(channel.target) as plain:  # no certificate: no connection at all
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await HealthStub(plain).check("", timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_hosts_own_ca_gives_every_ray_worker_an_identity_of_its_own(tmp_path: Path, ray_address: str) -> None:
    providers = {
        "inference": [{"provider_id": "infer", "provider_type": "inline::testprov", "launcher": "ray"}],
        "vector_io": [{"provider_id": "store", "provider_type": "inline::store", "launcher": "ray"}],
    }
    config = _ray_config(tmp_path, ray_address, providers, ray={"address": ray_address, "tls": True})
    async with Host.from_config(config) as host:
        assert await host.provider("store").greet_through_inference(name="ca") == "hello, ca"  # both directions
        infer, store = (host.supervisor.providers[p].worker for p in ("infer", "store"))
        assert infer is not None and store is not None and infer.tls is not None and store.tls is not None
        assert infer.tls["server_name"] != store.tls["server_name"]  # each checked by a name of its own
        channel = host.supervisor.providers["infer"].channel
        assert channel is not None
        for plain_or_wrong in (None, {**infer.tls, "server_name": store.tls["server_name"]}):
            async with tls_channel(channel.target, plain_or_wrong, []) as other:  # no certificate / not its name
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await HealthStub(other).check("", timeout=5)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
        async with tls_channel(channel.target, infer.tls, []) as right_name:  # right name, but no token
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await HealthStub(right_name).check("", timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_constraints_are_refused_with_the_ray_launcher(tmp_path: Path) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "t", "provider_type": "inline::testprov", "launcher": "ray", "constraints": ["idna<3"]}
        ]
    }
    with pytest.raises(ConfigError, match=r"providers.tool_runtime\[t\].constraints"):
        load_plan(_ray_config(tmp_path, "unused", providers))


async def test_an_unreachable_cluster_fails_the_start_naming_it(tmp_path: Path) -> None:
    providers = {"tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "launcher": "ray"}]}
    address = f"127.0.0.1:{free_port()}"
    host = Host.from_config(_ray_config(tmp_path, address, providers))
    with pytest.raises(Exception) as exc:
        await asyncio.wait_for(host.start(), 120)
    assert address in str(exc.value) and exc.value.__class__.__name__ == "ProviderStartError"


def test_hostel_run_with_ray_serves_http_and_stops_cleanly(tmp_path: Path, ray_address: str) -> None:
    """`hostel run --ray ADDRESS`, as a user runs it: the conflicting-pins example served over HTTP from Ray."""
    import httpx

    port = free_port()
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "hostel", "run", str(EXAMPLES / "conflicting_pins" / "run.yaml"),
         "--port", str(port), "--ray", ray_address],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert server.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until(up, timeout=180), log.read_text()
        rows = httpx.get(f"{url}/v1/providers").json()["data"]
        assert {r["state"] for r in rows} == {"ready"} and all(r["pid"] for r in rows)
        old = httpx.post(f"{url}/v1/providers/old/versions", json={}, timeout=60).json()
        new = httpx.post(f"{url}/v1/providers/new/versions", json={}, timeout=60).json()
        assert old["idna"] == "2.10" and new["idna"].startswith("3.") and "runtime_resources" in new["prefix"]
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, log.read_text()


async def test_a_runtime_env_that_cannot_be_built_fails_the_start_with_the_installers_words(
    tmp_path: Path, ray_address: str
) -> None:
    providers = {
        "tool_runtime": [
            {
                "provider_id": "t",
                "provider_type": "inline::testprov",
                "launcher": "ray",
                "pip_packages": ["hostel-no-such-package-anywhere==0.0.1"],
            }
        ]
    }
    host = Host.from_config(_ray_config(tmp_path, ray_address, providers))
    with pytest.raises(Exception) as exc:
        await host.start()
    assert exc.value.__class__.__name__ == "ProviderStartError" and exc.value.stage == "import"  # type: ignore[attr-defined]
    assert "hostel-no-such-package-anywhere" in str(exc.value) and "unsatisfiable" in str(exc.value)
    assert "Traceback" not in str(exc.value)  # the installer's words, not Ray's agent's stack
    assert {s.state for s in host.status()} <= {"stopped", "failed"}
