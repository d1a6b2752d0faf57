"""Ray across machines with their own addresses: a head and worker nodes in network namespaces on a private veth
network (``tests/netns.py``), ``hostel run --ray`` on the head's machine with ``hostel.ray.tls: true``.

No namespace has a route to the package index: the nodes build the providers' Ray envs offline from a uv cache
on the shared filesystem (``hostel.ray.install_options: ["--offline"]``), warmed beforehand on a connected
machine, as an air-gapped cluster would.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import netns
from tests.conftest import TESTPROV, wait_until

pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))

PORT = 8321  # the machines are namespaces of their own: every port is free there

# A client on the head's machine, as a user there would call the host: (status, JSON body) of one request.
HTTP = """
import json, sys, urllib.request, urllib.error
url, body = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url, data=body.encode() if body else None, headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        print(json.dumps([r.status, json.loads(r.read())]))
except urllib.error.HTTPError as e:
    print(json.dumps([e.code, json.loads(e.read() or b"null")]))
except OSError as e:
    print(json.dumps([0, str(e)]))
"""

# The host's own side of per-worker TLS, from the head's machine: a worker on another machine accepts the host's
# identity only when it expects that worker's name, and refuses an identity from any other CA.
TLS_PROBE = """
import asyncio, json, sys
import grpc
from hostel.host import Host
from hostel.launch.pki import HOST_NAME, Pki
from hostel_sdk._health import HealthStub
from hostel_sdk._wire import tls_channel

async def code(target, tls):
    async with tls_channel(target, tls, []) as channel:
        try:
            await HealthStub(channel).check("", timeout=10)
            return "OK"
        except grpc.aio.AioRpcError as exc:
            return exc.code().name

async def main():
    async with Host.from_config(sys.argv[1]) as host:
        near, far = (host.supervisor.providers[p].worker for p in ("near", "far"))
        target = host.supervisor.providers["far"].channel.target
        forged = Pki().identity(HOST_NAME, peer="")  # the host's name, another CA
        print(json.dumps({
            "target": target,
            "other_workers_name": await code(target, {**far.tls, "server_name": near.tls["server_name"]}),
            "forged_ca": await code(target, {**forged, "server_name": far.tls["server_name"]}),
            "right_name_no_token": await code(target, far.tls),
            "greet": await host.provider("far").greet(name="tls"),
        }))

asyncio.run(main())
"""


class Site:
    """The lab: machines ``head`` and ``b`` (and later ``c``), Ray on each, a uv cache they share."""

    def __init__(self, lab: netns.Lab, uv_cache: Path) -> None:
        self.lab = lab
        lab.add("head")
        lab.add("b")
        self.cluster = netns.RayCluster(lab, netns.ray_env(UV_CACHE_DIR=str(uv_cache)))
        self.cluster.start("head", {"head_node": 1}, num_cpus=2, head=True)
        self.cluster.start("b", {"far_node": 1})

    def http(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{PORT}{path}"  # the head machine's own loopback
        out = self.lab.run("head", [sys.executable, "-c", HTTP, url, json.dumps(body) if body is not None else ""])
        status, answer = json.loads(out)
        return int(status), answer

    def providers(self) -> dict[str, dict[str, Any]]:
        status, answer = self.http("/v1/providers")
        return {row["provider_id"]: row for row in answer["data"]} if status == 200 else {}


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    workdir = Path("/tmp") / f"hmh-{netns.secrets.token_hex(3)}"  # Ray's socket paths must stay short
    workdir.mkdir()
    try:
        netns.warm_uv_cache(workdir / "uv-cache", workdir, [str(TESTPROV)])
        lab = netns.Lab(workdir)
        try:
            yield Site(lab, workdir / "uv-cache")
        finally:
            lab.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(900)
def test_providers_on_other_machines_answer_and_a_lost_machine_fails_only_its_own(tmp_path: Path, site: Site) -> None:
    head, b = site.lab.machines["head"], site.lab.machines["b"]
    config = netns.two_node_config(tmp_path, site.cluster.address)
    log = tmp_path / "hostel.log"
    env = netns.ray_env(HOSTEL_HOME=str(tmp_path / "home"))  # `hostel ps` finds the host's admin token there
    server = site.lab.popen(
        "head",
        [sys.executable, "-m", "hostel", "run", str(config), "--port", str(PORT)],
        env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:

        def ready(addresses: dict[str, str]) -> bool:
            assert server.poll() is None, log.read_text()
            rows = site.providers()
            return all(
                rows.get(p, {}).get("state") == "ready" and str(rows[p].get("address", "")).startswith(f"{ip}:")
                for p, ip in addresses.items()
            )

        assert wait_until(lambda: ready({"near": head.address, "far": b.address}), 300, 1), log.read_text()
        assert site.http("/v1/providers/far/greet", {"name": "b"}) == (200, "hi, b")  # across the network
        assert site.http("/v1/providers/near/greet", {"name": "head"}) == (200, "hi, head")
        ps = site.lab.run("head", [sys.executable, "-m", "hostel", "ps", "--port", str(PORT)], env)
        rows = {line.split()[0]: line.split() for line in ps.splitlines()[1:]}
        assert rows["far"][4].endswith(f"@{b.address}") and rows["near"][4].endswith(f"@{head.address}"), ps

        probe = json.loads(
            site.lab.run("head", [sys.executable, "-c", TLS_PROBE, str(config)], netns.ray_env(), timeout=300)
        )
        assert probe["target"].startswith(f"{b.address}:")
        assert probe["other_workers_name"] == "UNAVAILABLE"  # its certificate is not for the name the host expects
        assert probe["forged_ca"] == "UNAVAILABLE"  # the worker refuses an identity the host's CA did not issue
        assert probe["right_name_no_token"] == "UNAUTHENTICATED"  # TLS through; the token is checked next
        assert probe["greet"] == "hi, tls"

        site.lab.remove("b")  # the machine goes away, with its Ray node and worker

        def far_fails() -> bool:
            return site.http("/v1/providers/far/greet", {"name": "gone"})[0] == 503

        assert wait_until(far_fails, 120, 1), site.providers()

        def refused_at_once() -> bool:  # no live node has far_node: calls are refused, not left waiting for one
            return "waiting for a Ray node with {'far_node': 0.5}" in json.dumps(
                site.http("/v1/providers/far/greet", {})[1]
            )

        assert wait_until(refused_at_once, 60, 1), site.http("/v1/providers/far/greet", {"name": "gone"})
        status, answer = site.http("/v1/providers/far/greet", {"name": "gone"})
        assert status == 503 and "provider 'far' is restarting" in answer["error"]["message"], answer
        for n in range(5):  # the other machine's provider answers throughout
            assert site.http("/v1/providers/near/greet", {"name": str(n)}) == (200, f"hi, {n}")

        c = site.lab.add("c")  # a replacement machine with the same resource
        site.cluster.start("c", {"far_node": 1})
        assert wait_until(lambda: ready({"far": c.address}), 300, 1), (site.providers(), log.read_text()[-3000:])
        assert site.http("/v1/providers/far/greet", {"name": "c"}) == (200, "hi, c")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
