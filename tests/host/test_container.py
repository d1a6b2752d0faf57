"""The container launcher: its engine command line, its plan defaults, and real containers under podman.

The real tests build the test provider's image with ``hostel image build`` on a Debian base image made here
(see tests/container_env.py). They skip where podman cannot run containers, unless HOSTEL_REQUIRE_CONTAINERS=1
(set by .ci/run once it has installed podman), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hostel.config.plan import load_plan
from hostel.errors import ConfigError, ProviderCrashedError, ProviderStartError
from hostel.host import Host
from hostel.launch.container import run_command
from tests.conftest import make_config, provider_spec, wait_until
from tests.container_env import BASE_IMAGE, engine_unavailable

IMAGE = "localhost/hostel-testprov:test"
# The first real test also makes the base image (debootstrap) and the provider's image on a new machine.
pytestmark = pytest.mark.timeout(900)


def _config(tmp_path: Path, providers: list[dict[str, Any]], image: str | None = IMAGE, **top: Any) -> Path:
    specs = {"inline/tool_runtime/testprov": provider_spec(), "inline/tool_runtime/boxed": {
        "module": "hostel_testprov", "config_class": "hostel_testprov.Config", "container_image": image,
    }}  # fmt: skip
    return make_config(tmp_path, providers={"tool_runtime": providers}, specs=specs, **top)


def test_the_engine_command_line(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        [{"provider_id": "c", "provider_type": "inline::boxed", "limits": {"memory_mb": 256, "cpus": 1.5}}],
        hostel={"container": {"network": "none", "run_args": ["--runtime", "runc"], "python": "python3"}},
    )
    plan = load_plan(config)
    provider = plan.provider("c")
    mounts = ["/tmp/h/1-2", "/tmp/h/host.sock"]  # its own socket directory and the callback socket, nothing else
    command = run_command("/usr/bin/podman", provider, plan.settings.container, name="hostel-c-1-1", mounts=mounts)
    assert command == [
        "/usr/bin/podman", "run", "-i", "--rm", "--name", "hostel-c-1-1",
        "--label", "hostel.provider=c", "--label", f"hostel.host_pid={os.getpid()}",
        "--network", "none",
        "--cap-drop=ALL", "--security-opt=no-new-privileges", "--pids-limit=1024", "--read-only", "--tmpfs=/tmp",
        f"--user={os.getuid()}:{os.getgid()}",
        "--volume", "/tmp/h/1-2:/tmp/h/1-2", "--volume", "/tmp/h/host.sock:/tmp/h/host.sock",
        "--env", "PYTHONUNBUFFERED=1",
        "--memory", "256m", "--cpus", "1.5", "--runtime", "runc",
        IMAGE, "python3", "-m", "hostel_sdk.worker",
    ]  # fmt: skip


def test_an_image_only_spec_defaults_to_the_container_launcher(tmp_path: Path) -> None:
    providers = [
        {"provider_id": "boxed", "provider_type": "inline::boxed"},
        {"provider_id": "local", "provider_type": "inline::testprov"},
        {"provider_id": "forced", "provider_type": "inline::testprov", "launcher": "container", "container_image": "x"},
    ]
    plan = load_plan(_config(tmp_path, providers))
    assert [p.worker.launcher for p in plan.providers] == ["container", "process", "container"]
    assert plan.provider("forced").worker.container_image == "x"


def test_the_container_launcher_without_an_image_is_a_config_error(tmp_path: Path) -> None:
    config = _config(tmp_path, [{"provider_id": "t", "provider_type": "inline::testprov", "launcher": "container"}])
    with pytest.raises(ConfigError) as exc:
        load_plan(config)
    assert "providers.tool_runtime[t].launcher" in str(exc.value) and "container_image" in str(exc.value)


def test_a_missing_engine_fails_the_start_naming_it(tmp_path: Path) -> None:
    config = _config(
        tmp_path, [{"provider_id": "c", "provider_type": "inline::boxed"}], hostel={"container": {"engine": "docker"}}
    )
    os.environ["PATH"], saved = str(tmp_path), os.environ["PATH"]
    try:
        host = Host.from_config(config)
        with pytest.raises(ProviderStartError) as exc:
            asyncio.run(host.start())
    finally:
        os.environ["PATH"] = saved
    assert "no container engine" in str(exc.value) and "docker" in str(exc.value)


# Real containers ----------------------------------------------------------------------------------------------


def _image_build(
    tmp: Path, spec: dict[str, Any], hostel_home: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """``hostel image build`` for provider ``c`` of the ``boxed`` type, whose spec is ``spec``, as a user runs it."""
    config = make_config(
        tmp,
        providers={"tool_runtime": [{"provider_id": "c", "provider_type": "inline::boxed"}]},
        specs={"inline/tool_runtime/boxed": spec},
    )
    return subprocess.run(
        [sys.executable, "-m", "hostel", "image", "build", str(config), "c", "--base", BASE_IMAGE],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HOSTEL_HOME": str(hostel_home)},
        check=False,
    )


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory, hostel_home: Path) -> str:
    """The test provider's image, built by ``hostel image build`` (podman's layer cache makes rebuilds quick)."""
    reason = engine_unavailable()
    if reason:
        if os.environ.get("HOSTEL_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"containers required but unavailable: {reason}")
        pytest.skip(reason)
    spec = provider_spec(container_image=IMAGE)  # the image holds the test provider's package
    done = _image_build(tmp_path_factory.mktemp("image"), spec, hostel_home, timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == IMAGE
    return IMAGE


def _containers(host_pid: int) -> list[str]:
    done = subprocess.run(
        ["podman", "ps", "--all", "--filter", f"label=hostel.host_pid={host_pid}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


async def test_a_container_worker_answers_beside_a_local_one(
    tmp_path: Path, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    providers = [
        {"provider_id": "boxed", "provider_type": "inline::boxed", "config": {"greeting": "ahoy"}},
        {"provider_id": "local", "provider_type": "inline::testprov"},
    ]
    host = Host.from_config(_config(tmp_path, providers))
    await host.start()
    try:
        boxed, local = await host.provider("boxed").whoami(), await host.provider("local").whoami()
        assert boxed["prefix"] == "/opt/hostel" and boxed["pid"] == 1  # inside the image's venv, its own pid space
        assert local["prefix"] != "/opt/hostel" and local["pid"] > 1
        assert await host.provider("boxed").greet(name="crew") == "ahoy, crew"
        assert [i async for i in await host.provider("boxed").count(n=3)] == [0, 1, 2]
        assert len(_containers(os.getpid())) == 1
        assert {s.provider_id: s.env_path for s in host.status()}["boxed"] is None
        # Of the host it sees its own socket directory and the callback socket, not the local worker's
        # directory; of the host's environment, nothing.
        sockets = host.supervisor.context.socket_dir
        seen = await host.provider("boxed").surroundings(directory=str(sockets))
        own = host.supervisor.providers["boxed"].worker
        local_dir = host.supervisor.providers["local"].worker
        assert own is not None and local_dir is not None and isinstance(seen["entries"], list)
        # (a worker's directory is in its provider's: socket_dir/p<hash>/<generation>-<replica>)
        assert own.socket_path.parent.parent.name in seen["entries"]
        assert local_dir.socket_path.parent.parent.name not in seen["entries"]
        assert "OPENAI_API_KEY" not in seen["env"] and seen["uid"] == os.getuid()
    finally:
        await host.stop()
    assert _containers(os.getpid()) == []  # removed on stop


async def test_a_crashed_container_is_reported_and_restarted(tmp_path: Path, image: str) -> None:
    providers = [{"provider_id": "boxed", "provider_type": "inline::boxed"}]
    host = Host.from_config(_config(tmp_path, providers, hostel={"restart": {"backoff_initial_s": 0}}))
    await host.start()
    try:
        with pytest.raises(ProviderCrashedError) as exc:
            await host.provider("boxed").crash(code=7)
        assert exc.value.exit_code == 7 and "about to crash" in exc.value.stderr_tail
        assert await host.provider("boxed", timeout=60).greet(name="again") == "hello, again"
        assert host.status()[0].restarts == 1
        assert len(_containers(os.getpid())) == 1  # the dead one is gone, its successor runs
    finally:
        await host.stop()
    assert _containers(os.getpid()) == []


async def test_the_memory_limit_is_the_engines_and_named_in_the_crash(tmp_path: Path, image: str) -> None:
    providers = [{"provider_id": "boxed", "provider_type": "inline::boxed", "limits": {"memory_mb": 96}}]
    host = Host.from_config(_config(tmp_path, providers, hostel={"restart": {"backoff_initial_s": 0}}))
    await host.start()
    try:
        with pytest.raises(ProviderCrashedError) as exc:
            await host.provider("boxed").hog(megabytes=400)
        assert exc.value.signal == signal.SIGKILL
        assert "memory limit of 96 MB" in str(exc.value)
        assert await host.provider("boxed", timeout=60).add(a=2, b=3) == 5
    finally:
        await host.stop()


async def test_a_missing_image_fails_the_start_with_the_engines_words(tmp_path: Path, image: str) -> None:
    providers = [{"provider_id": "boxed", "provider_type": "inline::boxed"}]
    host = Host.from_config(_config(tmp_path, providers, image="localhost/hostel-no-such-image:none"))
    with pytest.raises(ProviderStartError) as exc:
        await host.start()
    assert exc.value.stage == "handshake" and "hostel-no-such-image" in exc.value.stderr_tail
    assert "container engine failed" in exc.value.stderr_tail
    assert _containers(os.getpid()) == []


def test_a_sigkilled_host_leaves_no_container(tmp_path: Path, image: str, hostel_home: Path) -> None:
    config = _config(tmp_path, [{"provider_id": "boxed", "provider_type": "inline::boxed"}])
    host = subprocess.Popen(
        [sys.executable, "-m", "hostel", "call", str(config), "boxed", "sleep", "--args", '{"seconds": 120}'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: _containers(host.pid), timeout=60), "the container never started"
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        assert wait_until(lambda: not _containers(host.pid), timeout=30), _containers(host.pid)
    finally:
        if host.poll() is None:
            host.kill()
        subprocess.run(["podman", "rm", "--force", *_containers(host.pid)], capture_output=True, check=False)


def test_an_image_that_cannot_be_built_fails_with_the_installers_words(
    tmp_path: Path, image: str, hostel_home: Path
) -> None:
    spec = provider_spec(container_image="localhost/hostel-broken:test", pip_packages=["hostel-no-such-package==0.0.1"])
    done = _image_build(tmp_path, spec, hostel_home, timeout=600)
    assert done.returncode == 1
    assert "building image 'localhost/hostel-broken:test' for provider 'c' failed" in done.stderr
    assert "hostel-no-such-package" in done.stderr
    gone = subprocess.run(["podman", "image", "exists", "localhost/hostel-broken:test"], check=False)
    assert gone.returncode != 0  # no image under that tag
