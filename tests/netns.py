"""Machines with their own addresses, on this one: network namespaces on a private veth network, and Ray nodes in
them. For the multi-host Ray tests, ``scripts/ray_multihost.py`` and its benchmark.

Each ``Lab`` makes a switch namespace holding a Linux bridge, and a namespace per machine joined to it by a veth
pair, with an address on ``10.231.0.0/24`` (private, and seen only inside these namespaces: nothing of this
machine's own network changes). A process "on" a machine is started with ``ip netns exec``; ``remove`` (a machine
that goes away) and ``close`` kill every process in the namespaces the lab made, by pid, then delete them.
Needs root and ``ip`` (iproute2).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUBNET = "10.231.0"
RAY = str(Path(sys.executable).parent / "ray")
RAY_PORT = 6379


def available() -> str | None:
    """Why namespaces cannot be made here, or ``None`` if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (`ip`)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Machine:
    """A namespace with one address on the lab's network."""

    name: str
    netns: str
    address: str


class Lab:
    """Namespaces standing for machines on one private network (see the module's docstring)."""

    def __init__(self, workdir: Path) -> None:
        self.tag = secrets.token_hex(2)
        self.workdir = workdir
        self.machines: dict[str, Machine] = {}
        self._next = 1
        self._switch = f"hostel-{self.tag}-sw"
        self._processes: list[subprocess.Popen[bytes]] = []
        _ip("netns", "add", self._switch)
        try:
            _ip("-n", self._switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self._switch, "link", "set", "br0", "up")
        except BaseException:
            _ip("netns", "del", self._switch)
            raise

    def add(self, name: str) -> Machine:
        """A new machine ``name`` with the next address of the network (``10.231.0.N``)."""
        netns, address = f"hostel-{self.tag}-{name}", f"{SUBNET}.{self._next}"
        outside, inside = f"h{self.tag}{self._next}s", f"h{self.tag}{self._next}n"  # at most 15 characters
        self._next += 1
        _ip("netns", "add", netns)
        self.machines[name] = machine = Machine(name, netns, address)
        _ip("link", "add", outside, "netns", self._switch, "type", "veth", "peer", "name", inside, "netns", netns)
        _ip("-n", self._switch, "link", "set", outside, "master", "br0", "up")
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", netns, "link", "set", inside, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        return machine

    def popen(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, **kw: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on machine ``name`` (in a session of its own)."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.machines[name].netns, *argv], env=env, start_new_session=True, **kw
        )
        self._processes.append(process)
        return process

    def run(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
        """Run ``argv`` on machine ``name`` to its end; its stdout (``CalledProcessError`` if it fails)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.machines[name].netns, *argv],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
        return done.stdout

    def remove(self, name: str) -> None:
        """Machine ``name`` goes away: every process in its namespace is killed, then the namespace is deleted
        (its link with it)."""
        machine = self.machines.pop(name)
        for _ in range(50):
            pids = [int(p) for p in subprocess.run(
                ["ip", "netns", "pids", machine.netns], capture_output=True, text=True, check=False
            ).stdout.split()]  # fmt: skip
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._reap()
            time.sleep(0.1)
        _ip("netns", "del", machine.netns)

    def _reap(self) -> None:
        for process in self._processes:
            process.poll()

    def close(self) -> None:
        """Remove every machine, then the network."""
        for name in list(self.machines):
            self.remove(name)
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", self._switch], check=False, capture_output=True)


def ray_env(**extra: str) -> dict[str, str]:
    """The environment of a Ray process on a lab machine: Ray takes its machine's address (the test session's
    loopback-only switch is removed), and the lab's clusters run without Ray's token auth (as the loopback ones)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    return {**env, "RAY_AUTH_MODE": "disabled", "RAY_DISABLE_USAGE_STATS": "1", **extra}


class RayCluster:
    """A Ray cluster on a lab's machines: a head, and worker nodes that join it (``ray start --block`` each)."""

    def __init__(self, lab: Lab, env: dict[str, str]) -> None:
        self.lab = lab
        self.env = env
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.head = ""

    @property
    def address(self) -> str:
        """The cluster's address (its head's GCS)."""
        return f"{self.lab.machines[self.head].address}:{RAY_PORT}"

    def start(self, name: str, resources: dict[str, float], *, num_cpus: int = 1, head: bool = False) -> None:
        """Ray on machine ``name`` (its head if ``head``), with custom ``resources``; returns once the cluster
        lists it."""
        machine = self.lab.machines[name]
        temp_dir = self.lab.workdir / f"ray-{name}"  # Ray's socket paths must stay short
        role = ["--head", f"--port={RAY_PORT}", "--include-dashboard=false"] if head else [f"--address={self.address}"]
        argv = [RAY, "start", "--block", *role, f"--node-ip-address={machine.address}", f"--num-cpus={num_cpus}",
                f"--resources={json.dumps(resources)}", f"--object-store-memory={150 * 2**20}",
                f"--temp-dir={temp_dir}", "--disable-usage-stats"]  # fmt: skip
        if head:
            self.head = name
        log = (self.lab.workdir / f"ray-{name}.log").open("wb")
        self.nodes[name] = process = self.lab.popen(name, argv, self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while not self._lists(resources):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray on {name} did not join: {(self.lab.workdir / f'ray-{name}.log').read_text()}")
            time.sleep(1)

    def _lists(self, resources: dict[str, float]) -> bool:
        """Whether ``ray status`` counts the node's custom resources in the cluster (it lists no addresses)."""
        try:
            out = self.lab.run(self.head, [RAY, "status", f"--address={self.address}"], self.env, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False
        return all(f" {name}" in out for name in resources)


def warm_uv_cache(cache: Path, workdir: Path, packages: Sequence[str]) -> None:
    """Fill a uv cache on the connected side, for nodes that install offline from it: the same install Ray's uv
    makes on a node (a venv over the node's Python with its site packages, ``packages`` into it)."""
    import uv

    venv = workdir / "warm"
    env = {**os.environ, "UV_CACHE_DIR": str(cache)}
    uv_bin = uv.find_uv_bin()
    subprocess.run([uv_bin, "venv", "--quiet", "--system-site-packages", "--python", sys.executable, str(venv)],
                   check=True, env=env)  # fmt: skip
    subprocess.run([uv_bin, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *packages],
                   check=True, env=env)  # fmt: skip
    shutil.rmtree(venv)


def two_node_config(tmp_path: Path, address: str) -> Path:
    """A run config with the test provider twice on the Ray cluster at ``address``: ``near`` on the node with
    the ``head_node`` resource, ``far`` on one with ``far_node``; per-worker TLS; nodes install offline."""
    from tests.conftest import make_config, provider_spec

    entry = {"provider_type": "inline::testprov", "config": {"greeting": "hi"}}
    return make_config(
        tmp_path,
        specs={"inline/tool_runtime/testprov": provider_spec()},
        providers={
            "tool_runtime": [
                {**entry, "provider_id": "near", "ray": {"resources": {"head_node": 0.5}}},
                {**entry, "provider_id": "far", "ray": {"resources": {"far_node": 0.5}}},
            ]
        },
        hostel={
            "launcher": "ray",
            "ray": {"address": address, "tls": True, "install_options": ["--offline"]},
            "restart": {"backoff_initial_s": 0.2, "max_restarts": 50, "window_s": 600},
            "build_timeout_s": 300,
        },
    )
