"""Env builds under faults, with real installs: concurrency, SIGKILL, Ctrl-C, locks, prune, other Pythons, pip."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hostel.cli import main
from tests.conftest import REPO, TESTPROV, has_python, make_config, provider_spec, wait_until, write_yaml

SLOWBUILD = REPO / "tests" / "providers" / "slowbuild"


def _hostel(*args: str, home: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hostel", *args],
        env={**os.environ, "HOSTEL_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _env_dirs(home: Path, provider_id: str) -> list[Path]:
    envs = home / "envs"
    return (
        sorted(p for p in envs.iterdir() if p.is_dir() and p.name.startswith(f"{provider_id}-"))
        if envs.exists()
        else []
    )


def _build_dirs(home: Path) -> list[Path]:
    envs = home / "envs"
    return [p for p in envs.iterdir() if ".build-" in p.name] if envs.exists() else []


def _slow_config(tmp_path: Path) -> Path:
    slow = tmp_path / "slowbuild"
    shutil.copytree(SLOWBUILD, slow)
    return make_config(
        tmp_path,
        specs={"inline/tool_runtime/testprov": provider_spec(pip_packages=[str(TESTPROV), str(slow)])},
        providers={"tool_runtime": [{"provider_id": "k", "provider_type": "inline::testprov"}]},
        hostel={"pass_env": ["SLOWBUILD_SECONDS", "SLOWBUILD_MARKER"]},  # installers see no other host variable
    )


def _stop_backend(marker: Path) -> None:
    """The slow build backend wrote its pid; end it so nothing we caused outlives the test."""
    if marker.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(marker.read_text()), signal.SIGKILL)


def test_concurrent_builds_of_one_env_both_succeed_with_one_env(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = _slow_config(tmp_path)
    procs = [_hostel("build", str(config), home=home, SLOWBUILD_SECONDS="2") for _ in range(2)]
    results = [_finish(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    statuses = sorted(out.split("\n")[1].split()[1] for _, out, _ in results)
    assert statuses == ["built", "reused"]  # the second waited on the lock, then reused
    assert len(_env_dirs(home, "k")) == 1 and not _build_dirs(home)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_build_keeps_the_previous_env_and_leaves_nothing_trusted(tmp_path: Path, sig: int) -> None:
    home = tmp_path / "home"
    good = make_config(
        tmp_path, providers={"tool_runtime": [{"provider_id": "k", "provider_type": "inline::testprov"}]}
    )
    assert _finish(_hostel("build", str(good), home=home))[0] == 0
    (previous,) = _env_dirs(home, "k")

    config = _slow_config(tmp_path)  # same provider, changed spec: a new env
    marker = tmp_path / "marker"
    proc = _hostel("build", str(config), home=home, SLOWBUILD_SECONDS="30", SLOWBUILD_MARKER=str(marker))
    try:
        assert wait_until(marker.exists, timeout=120), "the build never reached the package build"
        proc.send_signal(sig)
        code, _, err = _finish(proc, timeout=60)
    finally:
        _stop_backend(marker)
    if sig == signal.SIGINT:
        assert code == 130 and "interrupted" in err
        assert not _build_dirs(home)  # cleaned up on the way out
    else:
        assert code == -signal.SIGKILL
    assert _env_dirs(home, "k") == [previous]  # untouched, and no half env under a trusted name
    assert (previous / "hostel-env.json").exists()

    listed = subprocess.run(
        [sys.executable, "-m", "hostel", "list", str(config), "--json"],
        env={**os.environ, "HOSTEL_HOME": str(home)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(listed.stdout)[0]["env"] == "stale"

    code, _out, err = _finish(_hostel("build", str(config), home=home, SLOWBUILD_SECONDS="0"))
    assert code == 0, err
    assert len(_env_dirs(home, "k")) == 2 and not _build_dirs(home)


def test_lock_then_locked_build_then_changed_spec_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path)
    assert main(["lock", str(config)]) == 0
    lock = json.loads((tmp_path / "hostel.lock").read_text())
    pins = lock["providers"]["t"]["pins"]
    assert any(p.startswith("pydantic==") for p in pins) and any(
        p.startswith("hostel-testprov @ file://") for p in pins
    )
    assert not any(p.startswith("hostel-sdk") for p in pins)
    hashes = lock["providers"]["t"]["hashes"]  # every pin from the index with the sha256 of its files
    assert set(hashes) == {p for p in pins if "file://" not in p}
    assert all(h and all(x.startswith("sha256:") and len(x) == 71 for x in h) for h in hashes.values())

    assert main(["build", "--locked", str(config)]) == 0
    metadata_path = next(p for p in (Path(os.environ["HOSTEL_HOME"]) / "envs").glob("t-*/hostel-env.json")
                         if json.loads(p.read_text())["spec"]["pins"])  # fmt: skip
    metadata = json.loads(metadata_path.read_text())
    assert sorted(metadata["resolved"]) == sorted(pins)  # exactly the pins, nothing more

    # Different bytes under a pinned version: the locked build fails naming the distribution.
    pydantic = next(p for p in pins if p.startswith("pydantic=="))
    lock["providers"]["t"]["hashes"][pydantic] = ["sha256:" + "0" * 64]
    (tmp_path / "hostel.lock").write_text(json.dumps(lock))
    fresh = tmp_path / "fresh-home"  # no env built from the good bytes to reuse
    monkeypatch.setenv("HOSTEL_HOME", str(fresh))
    capsys.readouterr()
    assert main(["build", "--locked", str(config)]) == 1
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert f"Hash mismatch for `{pydantic}`" in err and "differ from the hashes hostel.lock recorded" in err, err
    assert not list((fresh / "envs").glob("t-*"))  # nothing half-built was left
    monkeypatch.setenv("HOSTEL_HOME", str(metadata_path.parents[2]))

    write_yaml(
        tmp_path / "providers.d/inline/tool_runtime/testprov.yaml", provider_spec(pip_packages=[str(TESTPROV), "idna"])
    )
    capsys.readouterr()
    assert main(["build", "--locked", str(config)]) == 1
    err = capsys.readouterr().err
    assert "provider 't'" in err and "changed since the lock" in err and "hostel lock" in err


def test_locked_build_without_a_lock_says_how_to_make_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--locked", str(make_config(tmp_path))]) == 2
    assert "hostel lock" in capsys.readouterr().err


def test_one_failing_provider_does_not_stop_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = {
        "inline/tool_runtime/testprov": provider_spec(),
        "inline/tool_runtime/broken": provider_spec(pip_packages=["hostel-no-such-distribution-anywhere==1.0"]),
    }
    providers = {
        "tool_runtime": [
            {"provider_id": "t", "provider_type": "inline::testprov"},
            {"provider_id": "broken", "provider_type": "inline::broken"},
        ]
    }
    assert main(["build", str(make_config(tmp_path, specs=specs, providers=providers))]) == 1
    captured = capsys.readouterr()
    assert "t        " in captured.out or " t " in captured.out
    assert "failed" in captured.out and "hostel-no-such-distribution-anywhere" in captured.err


async def test_prune_removes_only_envs_no_config_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    keep = make_config(tmp_path / "keep")
    drop = make_config(
        tmp_path / "drop",
        specs={"inline/tool_runtime/testprov": provider_spec(pip_packages=[str(TESTPROV), "idna"])},
        providers={"tool_runtime": [{"provider_id": "gone", "provider_type": "inline::testprov"}]},
    )
    for config in (keep, drop):
        assert _finish(_hostel("build", str(config), home=home))[0] == 0
    env = {**os.environ, "HOSTEL_HOME": str(home)}
    run = [sys.executable, "-m", "hostel", "envs", "prune", str(keep)]
    dry = subprocess.run([*run, "--dry-run"], env=env, capture_output=True, text=True, check=True)
    assert "would remove" in dry.stdout and "gone" in dry.stdout and len(_env_dirs(home, "gone")) == 1
    subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert _env_dirs(home, "gone") == [] and len(_env_dirs(home, "t")) == 1
    listed = subprocess.run(
        [sys.executable, "-m", "hostel", "envs", "list"], env=env, capture_output=True, text=True, check=True
    )
    assert "inline::testprov" in listed.stdout and "gone" not in listed.stdout


@pytest.mark.skipif(not has_python("3.12"), reason="no Python 3.12 on this machine")
async def test_provider_python_version_builds_its_env_with_that_interpreter(tmp_path: Path) -> None:
    from hostel import Host

    providers = {"tool_runtime": [{"provider_id": "py312", "provider_type": "inline::testprov", "python": "3.12"}]}
    async with Host.from_config(make_config(tmp_path, providers=providers)) as host:
        who = await host.provider("py312").whoami()
    assert who["python"].startswith("3.12.")


def test_pip_installer_builds_a_working_env(tmp_path: Path) -> None:
    providers = {"tool_runtime": [{"provider_id": "viapip", "provider_type": "inline::testprov"}]}
    config = make_config(tmp_path, providers=providers, hostel={"installer": "pip"})
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "call", str(config), "viapip", "greet", "--args", '{"name": "pip"}'],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "hello, pip"
    metadata = [
        json.loads(p.read_text()) for p in (Path(os.environ["HOSTEL_HOME"]) / "envs").glob("viapip-*/hostel-env.json")
    ]
    assert [m["installer"] for m in metadata] == ["pip"]
