"""Ray nodes on this machine for the tests, on loopback: ``ray start --block`` processes started and stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.served import free_port

RAY = str(Path(sys.executable).parent / "ray")
# Ray 2.60 replaces `--node-ip-address=127.0.0.1` with the machine's routable address; with
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (set for the whole test session in conftest.py, before ray is
# imported) it stays on 127.0.0.1. A loopback cluster for the tests is also without Ray's token auth, which a
# driver process would have to be configured for before it imports ray (docs/launchers.md: keep it on for
# real clusters).
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", LOOPBACK: "0"}


def start_head(temp_dir: Path, num_cpus: int = 2) -> tuple[subprocess.Popen[bytes], str]:
    """A head node; its address once ``ray status`` answers."""
    port = free_port()
    head = _start(
        ["--head", f"--port={port}", f"--num-cpus={num_cpus}", "--include-dashboard=false", f"--temp-dir={temp_dir}"]
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, check=False, env=ENV).returncode:
        if head.poll() is not None or time.monotonic() > deadline:
            stop(head)
            pytest.fail(f"ray start failed: {head.stderr.read().decode() if head.stderr else ''}")
        time.sleep(1)
    return head, address


def start_node(address: str, temp_dir: Path, resources: dict[str, float], num_cpus: int = 1) -> subprocess.Popen[bytes]:
    """Another raylet on this machine joining ``address``, with custom ``resources`` to place workers by. It
    needs a ``temp_dir`` of its own: nodes sharing one would build the same runtime_env in the same place.

    Started from Python (``tests/ray_node.py``), not ``ray start``: the command line refuses to add a node to
    a cluster kept on loopback, and would not keep the node itself on 127.0.0.1."""
    node = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("ray_node.py")), address, str(temp_dir), str(num_cpus),
         json.dumps(resources)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=ENV,
    )  # fmt: skip
    assert node.stdout is not None
    if node.stdout.readline().strip() != b"ready":
        stop(node)
        pytest.fail(f"the Ray node did not start: {node.stderr.read().decode() if node.stderr else ''}")
    return node


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=ENV,
    )


def stop(node: subprocess.Popen[bytes]) -> None:
    """Stop a node we started (its raylet and the processes of its session) and wait for it."""
    node.terminate()
    try:
        node.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
