"""Shared fixtures: one env cache for the whole session, config writers, and a process-leak check."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# Keep every Ray node and driver of the tests on 127.0.0.1: Ray 2.60 otherwise takes the machine's routable
# address even when told 127.0.0.1 (tests/ray_cluster.py). Read by ray when imported: set before any test is.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parent.parent
TESTPROV = REPO / "tests" / "providers" / "testprov"
SEEDPROV = REPO / "tests" / "providers" / "seedprov"
CHAOSPROV = REPO / "tests" / "providers" / "chaosprov"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def hostel_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HOSTEL_HOME for the session, so each test env is built once (HOSTEL_TEST_HOME keeps it across runs)."""
    if os.environ.get("HOSTEL_TEST_HOME"):
        path = Path(os.environ["HOSTEL_TEST_HOME"])
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("hostel-home")


def hostel_processes(marker: str) -> dict[int, tuple[str, int]]:
    """Live processes whose command line mentions ``marker`` and runs a hostel worker or zygote: pid ->
    (command line, parent pid)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        runs = "hostel_sdk.worker" in cmdline or "hostel_sdk.zygote" in cmdline
        if runs and marker in cmdline and fields[0] != "Z":
            found[int(entry.name)] = (cmdline, int(fields[1]))
    return found


def worker_pids(marker: str) -> list[int]:
    """Pids of the live workers whose command line mentions ``marker``: spawned ones, and ones forked by a
    zygote (which keep the zygote's command line; their parent is the zygote)."""
    found = hostel_processes(marker)
    return [
        pid
        for pid, (cmdline, parent) in found.items()
        if "hostel_sdk.worker" in cmdline or "hostel_sdk.zygote" in found.get(parent, ("", 0))[0]
    ]


def hostel_pids(marker: str) -> list[int]:
    """Pids of every live worker and zygote whose command line mentions ``marker`` (what must not outlive a
    host)."""
    return list(hostel_processes(marker))


def hub_pids() -> dict[int, int]:
    """Live hostel hubs (``python -m hostel.bridge.hub``): pid -> parent pid."""
    import psutil

    return {
        p.pid: p.ppid()
        for p in psutil.process_iter(["cmdline"])
        if "hostel.bridge.hub" in " ".join(p.info["cmdline"] or ())
    }


def stop_server(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM a server this test started and wait for it; SIGKILL it if it has not stopped within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def python_path(version: str) -> str | None:
    """A Python of that version on PATH or under pyenv (where hostel looks for ``python:``), if any."""
    import shutil

    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob(f"{version}*/bin/python3"))
    return str(found[-1]) if found else shutil.which(f"python{version}")


def has_python(version: str) -> bool:
    """Whether a Python of that version is on PATH or under pyenv."""
    return python_path(version) is not None


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _isolated_home(hostel_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test uses the session's env cache, and must leave no worker process behind."""
    monkeypatch.setenv("HOSTEL_HOME", str(hostel_home))
    yield
    assert wait_until(lambda: not hostel_pids(str(hostel_home)), timeout=10), (
        f"test left worker or zygote processes behind: {hostel_pids(str(hostel_home))}"
    )


@pytest.fixture(scope="session")
def llama_stack_client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """llama-stack-client in a venv of its own (it imports fire and requests without declaring them)."""
    import subprocess

    import uv

    venv = tmp_path_factory.mktemp("lsc-venv")
    subprocess.run([uv.find_uv_bin(), "venv", "--quiet", str(venv)], check=True)
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "llama-stack-client", "fire", "requests"],
        check=True,
    )  # fmt: skip
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def ogx_client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ogx-client 1.5 (OGX 1.x's own client; it needs Python >= 3.12) in a venv of its own."""
    import subprocess

    import uv

    python = python_path("3.12")
    if python is None:
        pytest.skip("ogx-client 1.5 needs Python >= 3.12, not found here")
    venv = tmp_path_factory.mktemp("ogx-client-venv")
    subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "ogx-client==1.5.0"],
        check=True,
    )
    return venv / "bin" / "python"


def ogx_server_venv(venv: Path, requirements: Path) -> Path:
    """A Python 3.12 venv at ``venv`` with an example's OGX server requirements and this repository's hostel (what a
    user installs to serve hostel's APIs from OGX); its ``ogx``."""
    import subprocess

    import uv

    python = python_path("3.12")
    assert python is not None, "OGX 1.5 needs Python >= 3.12"
    subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-r", str(requirements), str(REPO)],
        check=True,
    )  # fmt: skip
    return venv / "bin" / "ogx"


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def provider_spec(**overrides: Any) -> dict[str, Any]:
    """An inline spec for the test provider (its package installed from the repo)."""
    spec: dict[str, Any] = {
        "module": "hostel_testprov",
        "config_class": "hostel_testprov.Config",
        "pip_packages": [str(TESTPROV)],
        "provider_data_validator": "hostel_testprov.ProviderData",
        "api_dependencies": [],
    }
    spec.update(overrides)
    return spec


def chaos_spec(**overrides: Any) -> dict[str, Any]:
    """An inline spec for the misbehaving test provider (one named fault per method), depending on inference."""
    spec: dict[str, Any] = {
        "module": "hostel_chaosprov",
        "config_class": "hostel_chaosprov.Config",
        "pip_packages": [str(CHAOSPROV)],
        "api_dependencies": ["inference"],
    }
    spec.update(overrides)
    return spec


def make_config(
    tmp_path: Path,
    providers: dict[str, list[dict[str, Any]]] | None = None,
    specs: dict[str, dict[str, Any]] | None = None,
    **top: Any,
) -> Path:
    """Write ``providers.d`` (``specs``: ``"inline/tool_runtime/testprov"`` -> spec) and ``run.yaml``.

    Returns the run config's path."""
    specs = {"inline/tool_runtime/testprov": provider_spec()} if specs is None else specs
    for rel, spec in specs.items():
        write_yaml(tmp_path / "providers.d" / f"{rel}.yaml", spec)
    if providers is None:
        providers = {
            "tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "config": {"greeting": "hi"}}]
        }
    return write_yaml(
        tmp_path / "run.yaml", {"version": 2, "external_providers_dir": "./providers.d", "providers": providers, **top}
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (multi-GB downloads) run only with HOSTEL_SLOW=1."""
    if os.environ.get("HOSTEL_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: needs GBs of downloads; set HOSTEL_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
