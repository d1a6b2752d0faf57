"""Air-gapped builds: `hostel pack` on a connected machine, `hostel build --locked --bundle` where there is no network
(a network namespace of its own, `unshare -n`, with empty installer caches and a new HOSTEL_HOME), then a call.

The project is the README's example (two local packages pinning different idna) plus one real PyPI provider on
another Python (TrustyAI FMS on 3.12). A provider's container image builds from the same bundle with no network.
A managed Python travels in the bundle to a target that has none."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLES, python_path
from tests.container_env import BASE_IMAGE, engine_unavailable

FMS = {
    "provider_id": "fms", "provider_type": "remote::trustyai_fms", "module": "llama_stack_provider_trustyai_fms==0.4.0",
    "python": "3.12", "pip_packages": ["llama-stack-api", "httpx"],
    "config": {"shields": {"pii": {"type": "content", "detector_url": "http://127.0.0.1:18090"}}},
}  # fmt: skip


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


pytestmark = [
    pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -n` (a namespace with no network) to prove offline"),
    pytest.mark.skipif(not python_path("3.12"), reason="the FMS provider runs on Python 3.12, not found here"),
]


def hostel(*args: str, home: Path, cwd: Path, offline: bool = False, extra: dict[str, str] | None = None) -> Any:
    """``hostel ARGS`` as a user runs it; offline: in a network namespace of its own, with empty installer caches."""
    env = {**os.environ, "HOSTEL_HOME": str(home), **(extra or {})}
    command = [sys.executable, "-m", "hostel", *args]
    if offline:
        caches = home / "empty-caches"
        env |= {"UV_CACHE_DIR": str(caches / "uv"), "PIP_CACHE_DIR": str(caches / "pip"), "UV_NO_CACHE": "1"}
        command = ["unshare", "-n", *command]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, hostel_home: Path) -> Path:
    """The project, locked and packed (whole, and with provider ``old`` only) on this connected machine."""
    root = tmp_path_factory.mktemp("pack") / "project"
    shutil.copytree(EXAMPLES / "conflicting_pins", root)
    raw = yaml.safe_load((root / "run.yaml").read_text())
    raw["providers"]["safety"] = [FMS]
    (root / "run.yaml").write_text(yaml.safe_dump(raw))
    for args in (("lock", "run.yaml"), ("pack", "run.yaml", "-o", "all.bundle"),
                 ("pack", "run.yaml", "-o", "old.bundle", "--provider", "old")):  # fmt: skip
        done = hostel(*args, home=hostel_home, cwd=root)
        assert done.returncode == 0, done.stderr[-3000:]
    return root


def _envs(home: Path) -> set[str]:
    return {p.name for p in (home / "envs").iterdir() if not p.name.startswith(".")}


def test_a_bundle_builds_every_env_offline_as_a_connected_locked_build_does(
    project: Path, hostel_home: Path, tmp_path: Path
) -> None:
    offline_home = tmp_path / "home"
    built = hostel("build", "--locked", "--bundle", "all.bundle", "run.yaml", home=offline_home, cwd=project,
                   offline=True)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    # The same envs (the same keys) as the connected machine's locked build, which `hostel pack` made.
    assert len(_envs(offline_home)) == 3 and _envs(offline_home) <= _envs(hostel_home)
    old = hostel("call", "--locked", "run.yaml", "old", "versions", home=offline_home, cwd=project, offline=True)
    assert old.returncode == 0, old.stderr[-3000:]
    assert json.loads(old.stdout)["idna"] == "2.10" and str(offline_home) in json.loads(old.stdout)["prefix"]
    # FMS on its own Python answers too; its detector is out of reach (no network here), which it reports.
    fms = hostel("call", "--locked", "run.yaml", "fms", "run_moderation", "--args", '{"input": "hi", "model": "pii"}',
                 home=offline_home, cwd=project, offline=True)  # fmt: skip
    assert fms.returncode == 0, fms.stderr[-3000:]
    result = json.loads(fms.stdout)["results"][0]
    assert result["flagged"] is False and "connection attempts failed" in result["metadata"]["error"]


def test_a_bundle_that_lacks_a_provider_is_refused_naming_it(project: Path, tmp_path: Path) -> None:
    done = hostel("build", "--locked", "--bundle", "old.bundle", "run.yaml", home=tmp_path / "home", cwd=project,
                  offline=True)  # fmt: skip
    assert done.returncode == 1
    assert "the bundle lacks provider 'new' (it holds: old)" in done.stderr
    assert "the bundle lacks provider 'fms'" in done.stderr
    assert "old: built" in done.stderr  # what it has, it builds


def test_a_tampered_bundle_is_refused_by_hash(project: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.bundle"
    with tarfile.open(project / "all.bundle") as source, tarfile.open(tampered, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("wheels/idna-2.10"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            out.addfile(member, io.BytesIO(data))
    done = hostel("build", "--locked", "--bundle", str(tampered), "run.yaml", home=tmp_path / "home", cwd=project,
                  offline=True)  # fmt: skip
    assert done.returncode == 2
    assert "wheels/idna-2.10-py2.py3-none-any.whl does not match its manifest" in done.stderr
    assert not (tmp_path / "home" / "envs").exists()


def test_a_file_that_is_no_bundle_is_refused_naming_it(project: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a tar file")
    done = hostel("build", "--locked", "--bundle", str(tmp_path / "notes.txt"), "run.yaml", home=tmp_path / "home",
                  cwd=project, offline=True)  # fmt: skip
    assert done.returncode == 2 and "notes.txt" in done.stderr and "not a hostel bundle" in done.stderr
    assert "Traceback" not in done.stderr


def test_pack_refuses_a_config_without_a_lock_or_with_a_stale_one(project: Path, hostel_home: Path) -> None:
    bare = project.parent / "unlocked"
    shutil.copytree(project, bare, ignore=shutil.ignore_patterns("hostel.lock", "*.bundle"))
    done = hostel("pack", "run.yaml", "-o", "x.bundle", home=hostel_home, cwd=bare)
    assert done.returncode == 2 and "no lock" in done.stderr and "run `hostel lock CONFIG`" in done.stderr
    shutil.copy(project / "hostel.lock", bare / "hostel.lock")
    raw = yaml.safe_load((bare / "run.yaml").read_text())
    raw["providers"]["safety"][0]["pip_packages"].append("rich")
    (bare / "run.yaml").write_text(yaml.safe_dump(raw))
    done = hostel("pack", "run.yaml", "-o", "x.bundle", home=hostel_home, cwd=bare)
    said = " ".join(done.stderr.split())  # as printed, wrapped to the terminal's width
    assert (
        done.returncode == 1 and "the spec of provider 'fms'" in said and "changed since the lock was written" in said
    )
    assert "no bundle written" in said and not (bare / "x.bundle").exists()


def test_a_provider_image_builds_from_the_bundle_with_no_network(project: Path, hostel_home: Path) -> None:
    """`hostel image build --bundle`: the image's venv gets the provider's locked pins from the bundle (the engine
    builds with `--network none`); the container launcher then runs the provider from it."""
    reason = engine_unavailable()  # sets CONTAINERS_CONF for this sandbox
    if reason:
        if os.environ.get("HOSTEL_REQUIRE_CONTAINERS") == "1":
            pytest.fail(f"containers required but unavailable: {reason}")
        pytest.skip(reason)
    tag = f"localhost/hostel-pack-test:{os.getpid()}"
    try:
        built = hostel("image", "build", "run.yaml", "old", "--tag", tag, "--base", BASE_IMAGE, "--bundle",
                       "all.bundle", home=hostel_home, cwd=project)  # fmt: skip
        assert built.returncode == 0, built.stderr[-3000:]
        raw = yaml.safe_load((project / "run.yaml").read_text())
        raw["providers"] = {"tool_runtime": [{**raw["providers"]["tool_runtime"][0], "launcher": "container",
                                              "container_image": tag}]}  # fmt: skip
        (project / "boxed.yaml").write_text(yaml.safe_dump(raw))
        called = hostel("call", "boxed.yaml", "old", "versions", home=hostel_home, cwd=project)
        assert called.returncode == 0, called.stderr[-3000:]
        versions = json.loads(called.stdout)
        assert versions["idna"] == "2.10" and versions["prefix"] == "/opt/hostel"
    finally:
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, check=False)


def _uv_style_python(version: str, root: Path) -> Path:
    """A relocatable CPython laid out as ``uv python install`` lays them out (``cpython-<v>-<platform>``), made
    from this machine's pyenv one (uv's downloads are not reachable here): a copy, its library path made relative
    to the binary with patchelf, as python-build-standalone's are."""
    source = python_path(version)
    assert source is not None
    prefix = Path(subprocess.run([source, "-c", "import sys; print(sys.base_prefix)"], capture_output=True,
                                 text=True, check=True).stdout.strip())  # fmt: skip
    full = subprocess.run([source, "-c", "import platform; print(platform.python_version())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    install = root / f"cpython-{full}-linux-x86_64-gnu"
    shutil.copytree(prefix, install, symlinks=True, ignore=shutil.ignore_patterns("test", "__pycache__", "tkinter"))
    binary = install / "bin" / f"python{version}"
    patchelf = shutil.which("patchelf", path=str(Path(sys.executable).parent)) or "patchelf"
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../lib", str(binary)], check=True)
    return install


def test_a_managed_python_travels_in_the_bundle(tmp_path: Path, hostel_home: Path) -> None:
    """A provider on a Python the target lacks: `hostel pack` carries the uv-managed interpreter its env was built
    with; the offline machine builds and runs the provider on it, the original interpreter gone."""
    from tests.conftest import make_config

    managed = tmp_path / "uv-python"
    install = _uv_style_python("3.12", managed)
    make_config(  # run.yaml and its providers.d
        tmp_path, providers={"tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov",
                                               "python": "3.12", "config": {"greeting": "hi"}}]},
    )  # fmt: skip
    # Only the managed Python is a 3.12 here: no pyenv, nothing on PATH.
    only = {"UV_PYTHON_INSTALL_DIR": str(managed), "PYENV_ROOT": str(tmp_path / "no-pyenv"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # fmt: skip
    for args in (("lock", "run.yaml"), ("pack", "run.yaml", "-o", "py.bundle"),
                 ("pack", "run.yaml", "-o", "bare.bundle", "--no-interpreters")):  # fmt: skip
        done = hostel(*args, home=hostel_home, cwd=tmp_path, extra=only)
        assert done.returncode == 0, done.stderr[-3000:]
    with tarfile.open(tmp_path / "py.bundle") as bundle:
        manifest = json.load(bundle.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["providers"]["t"]["interpreter"] == install.name
    assert f"interpreters/{install.name}/bin/python3.12" in manifest["files"]
    with tarfile.open(tmp_path / "bare.bundle") as bundle:
        bare = json.load(bundle.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert bare["providers"]["t"]["interpreter"] is None and not any(
        f.startswith("interpreters/") for f in bare["files"]
    )

    shutil.rmtree(managed)  # the target has no 3.12 at all
    without = hostel("build", "--locked", "--bundle", "bare.bundle", "run.yaml", home=tmp_path / "bare-home",
                     cwd=tmp_path, offline=True, extra=only)  # fmt: skip
    assert without.returncode == 1 and "no Python 3.12 found" in without.stderr, without.stderr[-3000:]
    offline_home = tmp_path / "home"
    built = hostel("build", "--locked", "--bundle", "py.bundle", "run.yaml", home=offline_home, cwd=tmp_path,
                   offline=True, extra=only)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    who = hostel("call", "--locked", "run.yaml", "t", "whoami", home=offline_home, cwd=tmp_path, offline=True,
                 extra=only)  # fmt: skip
    assert who.returncode == 0, who.stderr[-3000:]
    answer = json.loads(who.stdout)
    found = hostel("python", "3.12", home=offline_home, cwd=tmp_path, offline=True, extra=only)
    assert found.stdout.strip() == str(offline_home / "interpreters" / install.name / "bin" / "python3"), found.stderr
    assert answer["python"].startswith("3.12.") and answer["base_prefix"] == str(
        offline_home / "interpreters" / install.name
    )
