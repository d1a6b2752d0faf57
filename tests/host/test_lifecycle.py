"""Live operations as a user runs them: ``hostel run`` with clients calling throughout while its config is
reloaded (HTTP, SIGHUP, ``hostel reload``), providers are stopped, started and restarted, and lazy providers
start on demand. Every provider here is a small package written per test session, in two versions."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import has_python, wait_until, write_yaml
from tests.served import Served

PROVIDER = """
import asyncio
import os
import platform
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict

VERSION = "@VERSION@"


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = ""
    fail: bool = False


class Provider:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def version(self) -> dict:
        return {"version": VERSION, "label": self.config.label, "pid": os.getpid(),
                "python": platform.python_version()}

    async def tick(self, n: int, interval: float) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(interval)
            yield i


async def get_provider_impl(config: Config, deps: dict) -> Provider:
    if config.fail:
        raise RuntimeError("refusing to start: fail is set")
    return Provider(config)
"""


def _package(root: Path, version: str) -> Path:
    pkg = root / f"verprov-{version}"
    (pkg / "hostel_verprov").mkdir(parents=True, exist_ok=True)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        f'[project]\nname = "hostel-verprov"\nversion = "{version}"\ndependencies = ["pydantic>=2"]\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["hostel_verprov"]\n'
    )
    (pkg / "hostel_verprov" / "__init__.py").write_text(PROVIDER.replace("@VERSION@", version))
    return pkg


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("verprov")
    return {version: _package(root, version) for version in ("1.0", "2.0")}


def _entry(provider_id: str, package: Path, **keys: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": "inline::verprov", "pip_packages": [str(package)], **keys}


def _write(tmp: Path, providers: dict[str, list[dict[str, Any]]], **top: Any) -> Path:
    spec = {"module": "hostel_verprov", "config_class": "hostel_verprov.Config", "pip_packages": []}
    write_yaml(tmp / "providers.d" / "inline" / "inference" / "verprov.yaml", spec)
    write_yaml(tmp / "providers.d" / "inline" / "safety" / "verprov.yaml", spec)
    write_yaml(
        tmp / "providers.d" / "inline" / "tool_runtime" / "verprov.yaml", {**spec, "api_dependencies": ["inference"]}
    )
    hostel = {"drain_grace_s": 30, "stop_grace_s": 5, **top.pop("hostel", {})}
    document = {
        "version": 2,
        "external_providers_dir": "./providers.d",
        "providers": providers,
        "hostel": hostel,
        **top,
    }
    return write_yaml(tmp / "run.yaml", document)


class Load:
    """Clients calling providers throughout, each call's failure kept: short calls and whole streams."""

    def __init__(self, url: str, calls: list[str], streams: list[str]) -> None:
        self.url = url
        self.failures: list[str] = []
        self.counts: dict[str, int] = {}
        self.seen: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._calls, args=(p,), daemon=True) for p in calls for _ in range(2)]
        self._threads += [threading.Thread(target=self._streams, args=(p,), daemon=True) for p in streams]
        for thread in self._threads:
            thread.start()

    def _record(self, provider_id: str, answer: Any) -> None:
        self.counts[provider_id] = self.counts.get(provider_id, 0) + 1
        self.seen.setdefault(provider_id, set()).add(f"{answer['version']}/{answer['label']}/{answer['python']}")

    def _calls(self, provider_id: str) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(f"{self.url}/v1/providers/{provider_id}/version", json={})
                    if response.status_code != 200:
                        self.failures.append(f"{provider_id}: {response.status_code} {response.text}")
                    else:
                        self._record(provider_id, response.json())
                except httpx.HTTPError as exc:
                    self.failures.append(f"{provider_id}: {exc!r}")

    def _streams(self, provider_id: str) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                try:
                    body = {"n": 10, "interval": 0.02}
                    with client.stream("POST", f"{self.url}/v1/providers/{provider_id}/tick", json=body) as response:
                        items = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
                    if response.status_code != 200 or items != list(range(10)):
                        self.failures.append(f"{provider_id} stream: {response.status_code} {items}")
                    else:
                        self.counts[f"{provider_id} streams"] = self.counts.get(f"{provider_id} streams", 0) + 1
                except httpx.HTTPError as exc:
                    self.failures.append(f"{provider_id} stream: {exc!r}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


@pytest.fixture
def served(tmp_path: Path, hostel_home: Path) -> Iterator[list[Served]]:
    running: list[Served] = []
    yield running
    for server in running:
        assert server.stop() == 0, server.log.read_text()


def _version(server: Served, provider_id: str) -> dict[str, Any]:
    response = server.post(f"/v1/providers/{provider_id}/version")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _states(server: Served) -> dict[str, Any]:
    return {r["provider_id"]: r for r in server.get("/v1/hostel/status").json()["providers"]}


def test_reloads_under_load_apply_every_kind_of_change_without_a_failed_call(
    tmp_path: Path, hostel_home: Path, packages: dict[str, Path], served: list[Served]
) -> None:
    v1, v2 = packages["1.0"], packages["2.0"]
    env_file = tmp_path / "secrets.env"
    env_file.write_text("LABEL=one\n")
    config = _write(
        tmp_path,
        {
            "inference": [
                _entry("keep", v1, config={"label": "k"}),
                _entry("change", v1, config={"label": "a"}),
                _entry("rotate", v1, config={"label": "${env.LABEL}"}),
                _entry("gone", v1),
            ]
        },
        models=[{"model_id": "m1", "provider_id": "change"}],
    )
    server = Served(config, hostel_home, args=["--env-file", str(env_file)])
    served.append(server)
    keep_pid = _version(server, "keep")["pid"]
    load = Load(server.url, ["keep", "change", "rotate"], ["change"])
    # A stream on the provider about to be removed: it must be served to its end.
    leaving: list[Any] = []
    stream_thread = threading.Thread(target=lambda: leaving.append(_stream(server, "gone", 40, 0.05)), daemon=True)
    stream_thread.start()
    try:
        time.sleep(0.5)
        # 1. Over HTTP: a config change, a rotated secret (the env file), a removal, an addition, the models table.
        env_file.write_text("LABEL=two\n")
        _write(
            tmp_path,
            {
                "inference": [
                    _entry("keep", v1, config={"label": "k"}),
                    _entry("change", v1, config={"label": "b"}),
                    _entry("rotate", v1, config={"label": "${env.LABEL}"}),
                    _entry("added", v1, config={"label": "new"}),
                ]
            },
            models=[{"model_id": "m2", "provider_id": "change"}],
        )
        response = server.post("/v1/hostel/reload")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["ok"] and report["added"] == ["added"] and report["removed"] == ["gone"]
        assert sorted(report["replaced"]) == ["change", "rotate"] and report["unchanged"] == ["keep"]
        assert report["models_changed"]
        assert _version(server, "change")["label"] == "b" and _version(server, "rotate")["label"] == "two"
        assert _version(server, "added")["label"] == "new" and _version(server, "keep")["pid"] == keep_pid
        assert server.post("/v1/providers/gone/version").status_code == 404
        assert [m["id"] for m in server.get("/v1/models").json()["data"]] == ["m2"]

        # 2. SIGHUP: a new version of the provider's package.
        _write(
            tmp_path,
            {
                "inference": [
                    _entry("keep", v1, config={"label": "k"}),
                    _entry("change", v2, config={"label": "b"}),
                    _entry("rotate", v1, config={"label": "${env.LABEL}"}),
                    _entry("added", v1, config={"label": "new"}),
                ]
            },
            models=[{"model_id": "m2", "provider_id": "change"}],
        )
        server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: _version(server, "change")["version"] == "2.0", timeout=120), server.log.read_text()

        # 3. `hostel reload`: another Python for the same provider.
        if has_python("3.12"):
            _write(
                tmp_path,
                {
                    "inference": [
                        _entry("keep", v1, config={"label": "k"}),
                        _entry("change", v2, config={"label": "b"}, python="3.12"),
                        _entry("rotate", v1, config={"label": "${env.LABEL}"}),
                        _entry("added", v1, config={"label": "new"}),
                    ]
                },
                models=[{"model_id": "m2", "provider_id": "change"}],
            )
            done = server.cli("reload")
            assert done.returncode == 0 and "replaced: change" in done.stdout, done.stdout + done.stderr
            assert _version(server, "change")["python"].startswith("3.12.")
        time.sleep(0.5)
    finally:
        load.stop()
        stream_thread.join(timeout=60)
    assert load.failures == [], load.failures[:5]
    assert leaving == [list(range(40))]  # the removed provider's stream was served to its end
    assert load.counts["change streams"] > 3 and load.counts["keep"] > 50
    assert {s.split("/")[0] for s in load.seen["change"]} == {"1.0", "2.0"}  # both versions served, in turn
    assert _version(server, "keep")["pid"] == keep_pid  # never touched
    assert wait_until(lambda: "stopped [pid" in server.log.read_text(), timeout=30)


def _stream(server: Served, provider_id: str, n: int, interval: float) -> list[int]:
    body = {"n": n, "interval": interval}
    with httpx.stream("POST", f"{server.url}/v1/providers/{provider_id}/tick", json=body, timeout=60) as response:
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("change", "stage"),
    [
        ({"pip_packages": ["hostel-no-such-package-anywhere==9.9"]}, "build"),
        ({"spec_overrides": {"module": "hostel_no_such_module"}}, "import"),
        ({"config": {"label": "x", "unknown": 1}}, "config"),
        ({"config": {"fail": True}}, "factory"),
    ],
)
def test_a_replacement_that_fails_leaves_the_old_one_serving_and_says_why(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    hostel_home: Path,
    packages: dict[str, Path],
    served: list[Served],
    change: dict[str, Any],
    stage: str,
) -> None:
    v1 = packages["1.0"]
    config = _write(tmp_path, {"inference": [_entry("p", v1, config={"label": "old"})]})
    server = Served(config, hostel_home)
    served.append(server)
    before = _version(server, "p")
    entry = _entry("p", v1, config={"label": "old"})
    if "pip_packages" in change:
        entry["pip_packages"] = [str(v1), *change["pip_packages"]]
    else:
        entry.update(change)
    _write(tmp_path, {"inference": [entry]})
    response = server.post("/v1/hostel/reload")
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["error"]["type"] == "ReloadFailed" and body["reload"]["failed"]["p"].startswith(f"{stage}:")
    assert _version(server, "p") == before  # same worker, same version
    assert _states(server)["p"]["state"] == "ready"
    done = server.cli("reload")
    assert done.returncode == 1 and f"failed p (its old worker, if any, still serves): {stage}:" in done.stderr


def test_a_config_that_does_not_validate_changes_nothing(
    tmp_path: Path, hostel_home: Path, packages: dict[str, Path], served: list[Served]
) -> None:
    config = _write(tmp_path, {"inference": [_entry("p", packages["1.0"], config={"label": "old"})]})
    server = Served(config, hostel_home)
    served.append(server)
    before = _version(server, "p")
    config.write_text(config.read_text().replace("inline::verprov", "inline::nosuchtype") + "\nhostel: [not, a, map]\n")
    response = server.post("/v1/hostel/reload")
    assert response.status_code == 400 and response.json()["error"]["type"] == "ConfigError"
    assert "nosuchtype" in response.json()["error"]["message"] and "hostel" in response.json()["error"]["message"]
    assert _version(server, "p") == before
    done = server.cli("reload")
    assert done.returncode == 2 and "nothing changed" in done.stderr
    refusals = lambda: server.log.read_text().count("reload refused, nothing changed")  # noqa: E731
    assert refusals() == 2  # the server's log says so too, for the request and for `hostel reload`
    server.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: refusals() == 3, timeout=30)
    assert _version(server, "p") == before


def test_providers_are_stopped_started_and_restarted_one_at_a_time(
    tmp_path: Path, hostel_home: Path, packages: dict[str, Path], served: list[Served]
) -> None:
    v1 = packages["1.0"]
    config = _write(tmp_path, {"inference": [_entry("p", v1), _entry("q", v1)]})
    server = Served(config, hostel_home)
    served.append(server)
    load = Load(server.url, ["q"], [])
    try:
        first = _version(server, "p")["pid"]
        restarting = Load(server.url, ["p"], ["p"])
        try:
            done = server.cli("restart", "p")
            assert done.returncode == 0 and "p: ready" in done.stdout, done.stderr
        finally:
            restarting.stop()
        assert restarting.failures == [] and _version(server, "p")["pid"] != first  # rolling: no call failed
        stopped = server.post("/v1/hostel/providers/p/stop")
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
        refused = server.post("/v1/providers/p/version")
        assert refused.status_code == 503 and "hostel start p" in refused.json()["error"]["message"]
        assert server.get("/v1/health").status_code == 200  # stopped on purpose: the host is healthy
        done = server.cli("start", "p")
        assert done.returncode == 0 and "p: ready" in done.stdout
        assert server.cli("stop", "ghost").returncode == 1
        assert server.post("/v1/hostel/providers/p/explode").status_code == 404
    finally:
        load.stop()
    assert load.failures == []  # its neighbour never noticed


def test_lazy_providers_start_on_demand_stop_when_idle_and_share_max_running(
    tmp_path: Path, hostel_home: Path, packages: dict[str, Path], served: list[Served]
) -> None:
    v1 = packages["1.0"]
    config = _write(
        tmp_path,
        {
            "inference": [_entry("base", v1)],
            "safety": [_entry("other", v1, idle_stop_s=1)],
            "tool_runtime": [_entry("dependent", v1)],  # depends on inference: "base"
        },
        hostel={"start": "lazy", "max_running": 2},
    )
    server = Served(config, hostel_home)
    served.append(server)
    states = _states(server)
    assert {r["state"] for r in states.values()} == {"idle"} and all(r["pid"] is None for r in states.values())
    assert all(r["env_path"] for r in states.values())  # built ahead
    assert server.get("/v1/health").json() == {"status": "OK"}

    assert _version(server, "other")["version"] == "1.0"
    assert _states(server)["other"]["state"] == "ready"
    assert wait_until(lambda: _states(server)["other"]["state"] == "idle", timeout=20)  # idle_stop_s: 1
    assert _version(server, "other")["version"] == "1.0"  # started again by the next call
    assert wait_until(lambda: _states(server)["other"]["state"] == "idle", timeout=20)

    _version(server, "other")
    assert _version(server, "dependent")["version"] == "1.0"  # its dependency started first, "other" made room
    assert {pid: r["state"] for pid, r in _states(server).items()} == {
        "base": "ready", "other": "idle", "dependent": "ready"
    }  # fmt: skip

    status = server.get("/v1/hostel/status").json()
    assert status["host"]["rss_bytes"] > 0 and status["host"]["pss_bytes"] > 0
    live = [r for r in status["providers"] if r["state"] == "ready"]
    assert all(r["rss_bytes"] > 10 * 2**20 and 0 < r["pss_bytes"] <= r["rss_bytes"] for r in live)
    # a worker forked from a warm zygote may not have used one 10 ms clock tick yet, so 0.0 is a fair reading
    assert all(isinstance(r["cpu_seconds"], float) and r["cpu_seconds"] >= 0 for r in live)
    assert status["host"]["cpu_seconds"] > 0
    metrics = server.get("/metrics").text
    assert 'hostel_worker_pss_bytes{provider_id="dependent"}' in metrics and "hostel_host_rss_bytes" in metrics
    ps = server.cli("ps")
    assert ps.returncode == 0 and "PSS MB" in ps.stdout and "(host)" in ps.stdout


def test_a_local_package_edited_in_place_is_replaced(
    tmp_path: Path, hostel_home: Path, packages: dict[str, Path], served: list[Served]
) -> None:
    package = tmp_path / "editable"
    shutil.copytree(packages["1.0"], package)
    config = _write(tmp_path, {"inference": [_entry("p", package)]})
    server = Served(config, hostel_home)
    served.append(server)
    source = package / "hostel_verprov" / "__init__.py"
    source.write_text(source.read_text().replace('VERSION = "1.0"', 'VERSION = "1.0-edited"'))
    report = server.post("/v1/hostel/reload").json()
    assert report["replaced"] == ["p"] and report["unchanged"] == []  # same entry, new contents
    assert _version(server, "p")["version"] == "1.0-edited"


async def test_the_python_api_reloads_package_declared_providers_and_controls_each(
    tmp_path: Path, packages: dict[str, Path]
) -> None:
    from hostel import ConfigError, Host
    from hostel.config.plan import load_plan
    from tests.conftest import REPO

    ep = {"provider_id": "ep", "provider_type": "inline::epprov", "module": "hostel_epprov",
          "pip_packages": [str(REPO / "tests" / "providers" / "epprov")]}  # fmt: skip
    config = _write(tmp_path, {"inference": [_entry("p", packages["1.0"])], "tool_runtime": [ep]})
    async with Host.from_config(config) as host:
        assert await host.provider("ep").idna_version() == "3.7"
        _write(tmp_path, {"inference": [_entry("p", packages["1.0"])], "tool_runtime": [{**ep, "env": {"X": "1"}}]})
        report = await host.reload()
        assert report.ok and report.replaced == ("ep",) and report.unchanged == ("p",), report
        assert await host.provider("ep").idna_version() == "3.7"  # its declared spec was read again
        stopped = await host.stop_provider("p")
        assert stopped.state == "stopped" and stopped.pid is None
        assert (await host.start_provider("p")).state == "ready"
        assert (await host.provider("p").version())["version"] == "1.0"
    from_dict = Host(load_plan({"providers": {}}))  # a plan, not a config it could read again
    async with from_dict:
        with pytest.raises(ConfigError, match="pass the new config"):
            await from_dict.reload()
        report = await from_dict.reload({"providers": {}})
        assert report.ok and report.added == ()
