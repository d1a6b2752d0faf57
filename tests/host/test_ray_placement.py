"""Per-provider placement on a two-node Ray cluster on this machine (a head, and a second raylet with a custom
resource): a pinned provider lands on the second node, replicas spread, and a node that stops takes only its
workers down; they come back when a node that fits is there again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostel.config.plan import load_plan
from hostel.errors import ConfigError
from hostel.host import Host
from tests import ray_cluster
from tests.conftest import make_config, provider_spec, wait_until

ray = pytest.importorskip("ray")


class Cluster:
    def __init__(self) -> None:
        self.temp_dir = Path("/tmp") / f"hostel-ray2-{os.getpid()}"  # Ray's socket paths must stay short
        self.head, self.address = ray_cluster.start_head(self.temp_dir / "h", num_cpus=2)
        self.node = self.second()

    def second(self) -> Any:
        """The second node, with the custom resource ``second`` (a new temp dir each time: a new node)."""
        self.started = getattr(self, "started", 0) + 1
        return ray_cluster.start_node(self.address, self.temp_dir / f"n{self.started}", {"second": 1})

    def close(self) -> None:
        for node in (self.node, self.head):
            ray_cluster.stop(node)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = Cluster()
    yield started
    started.close()


def _config(tmp_path: Path, address: str) -> Path:
    entry = {"provider_type": "inline::testprov", "launcher": "ray", "config": {"greeting": "hi"}}
    return make_config(
        tmp_path,
        specs={"inline/tool_runtime/testprov": provider_spec()},
        providers={
            "tool_runtime": [
                {**entry, "provider_id": "pinned", "ray": {"resources": {"second": 0.5}}},
                {**entry, "provider_id": "spread", "replicas": 2, "ray": {"num_cpus": 1}},
            ]
        },
        hostel={"restart": {"backoff_initial_s": 0.05, "max_restarts": 20}, "ray": {"address": address},
                "build_timeout_s": 600},
    )  # fmt: skip


def _nodes_of(provider_id: str) -> list[str]:
    """The nodes where this host's live actors of ``provider_id`` run, as each actor says."""
    prefix = f"hostel-{provider_id}-{os.getpid()}-"
    nodes = []
    for named in ray.util.list_named_actors(all_namespaces=True):
        if named["name"].startswith(prefix):
            actor = ray.get_actor(named["name"], namespace=named["namespace"])
            with contextlib.suppress(ray.exceptions.RayError):
                nodes.append(ray.get(actor.node_id.remote(), timeout=10))
    return sorted(nodes)


def _second_node() -> str:
    return next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "second" in n["Resources"])


async def test_placement_per_provider_and_a_node_going_away(tmp_path: Path, cluster: Cluster) -> None:
    async with Host.from_config(_config(tmp_path, cluster.address)) as host:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # loopback only
        second = _second_node()
        assert _nodes_of("pinned") == [second]
        spread = _nodes_of("spread")
        assert len(spread) == 2 and len(set(spread)) == 2  # one replica per node (SPREAD, 1 CPU each)
        assert (await host.provider("pinned").greet(name="a")) == "hi, a"

        ray_cluster.stop(cluster.node)  # the second node goes away with its workers

        def down() -> bool:
            return host.status()[0].state != "ready"

        assert await asyncio.to_thread(wait_until, down, 60)
        for _ in range(5):  # the other provider serves throughout: a replica is on the head node
            assert await host.provider("spread").greet(name="b") == "hi, b"

        cluster.node = cluster.second()  # a node that fits, again

        def back() -> bool:
            states = {s.provider_id: s.state for s in host.status()}
            return states == {"pinned": "ready", "spread": "ready"}

        assert await asyncio.to_thread(wait_until, back, 180), host.status()
        assert _nodes_of("pinned") == [_second_node()] != [second]
        assert await host.provider("pinned").greet(name="c") == "hi, c"


def test_placement_needs_the_ray_launcher(tmp_path: Path) -> None:
    entry: dict[str, Any] = {"provider_id": "t", "provider_type": "inline::testprov", "launcher": "process",
                             "ray": {"num_gpus": 1}}  # fmt: skip
    with pytest.raises(ConfigError, match="Ray placement needs launcher: ray"):
        load_plan(make_config(tmp_path, providers={"tool_runtime": [entry]}))


def _plan(tmp_path: Path, hostel: dict[str, Any] | None = None, **entry: Any) -> Any:
    row = {"provider_id": "t", "provider_type": "inline::testprov", "launcher": "ray", **entry}
    return load_plan(make_config(tmp_path, providers={"tool_runtime": [row]}, hostel=hostel or {}))


GPU_NODE = "ab" * 28  # Ray's node ids are 28 bytes, in hex


def test_a_start_says_when_no_live_node_could_ever_hold_its_actor(tmp_path: Path) -> None:
    from hostel.launch.ray_launcher import placement, unplaceable

    plan = _plan(tmp_path, ray={"num_cpus": 1, "resources": {"gpu_node": 1}})
    wanted = placement(plan.providers[0], plan.settings.ray)
    head = {"NodeID": "h", "Alive": True, "Resources": {"CPU": 4.0}}
    gpu = {"NodeID": GPU_NODE, "Alive": True, "Resources": {"CPU": 1.0, "gpu_node": 1.0}}
    assert (
        unplaceable(wanted, [head])
        == "a Ray node with {'CPU': 1, 'gpu_node': 1} (no live node of the cluster has them)"
    )
    assert unplaceable(wanted, [head, {**gpu, "Alive": False}]) is not None  # a dead node holds nothing
    assert unplaceable(wanted, [head, gpu]) is None  # busy or not, it fits there: waiting is worth it
    assert unplaceable(wanted, [head, {**gpu, "Resources": {"CPU": 0.5, "gpu_node": 1.0}}]) is not None

    pinned = _plan(tmp_path, ray={"node_id": GPU_NODE})
    wanted = placement(pinned.providers[0], pinned.settings.ray)
    assert unplaceable(wanted, [head]) == f"the Ray node {GPU_NODE} (it is not in the cluster)"
    assert unplaceable(wanted, [head, gpu]) is None
    soft = _plan(tmp_path, ray={"node_id": GPU_NODE, "soft": True})
    assert unplaceable(placement(soft.providers[0], soft.settings.ray), [head]) is None  # anywhere will do


def test_the_nodes_installer_takes_the_options_given(tmp_path: Path) -> None:
    from hostel.launch.ray_launcher import runtime_env

    plan = _plan(tmp_path, hostel={"ray": {"install_options": ["--offline"]}})
    assert runtime_env(plan.providers[0], plan.settings.ray)["uv"]["uv_pip_install_options"] == ["--offline"]
    plan = _plan(tmp_path, hostel={"ray": {"installer": "pip", "install_options": ["--no-index"]}})
    assert runtime_env(plan.providers[0], plan.settings.ray)["pip"]["pip_install_options"] == ["--no-index"]
    plan = _plan(tmp_path)
    assert "uv_pip_install_options" not in runtime_env(plan.providers[0], plan.settings.ray)["uv"]  # Ray's default
