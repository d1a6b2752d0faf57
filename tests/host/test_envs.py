"""Env keys, reuse and the hostel-sdk wheel, with real builds where it matters."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from hostel.config.plan import load_plan
from hostel.envs import EnvManager
from hostel.envs import commands as env_commands
from hostel.envs.sdkwheel import SDK_REQUIREMENTS, sdk_fingerprint, sdk_wheel
from hostel.errors import EnvBuildError
from tests.conftest import REPO, TESTPROV, make_config, provider_spec


def test_sdk_wheel_requirements_match_sdk_pyproject() -> None:
    declared = tomllib.loads((REPO / "sdk" / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(declared) == sorted(SDK_REQUIREMENTS)


def test_sdk_wheel_holds_the_package_and_its_requirements(tmp_path: Path) -> None:
    wheel = sdk_wheel(tmp_path)
    assert sdk_wheel(tmp_path) == wheel  # cached by content
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "hostel_sdk/worker.py" in names and "hostel_sdk/_proto/worker_pb2.py" in names
    assert all(f"Requires-Dist: {r}" in metadata for r in SDK_REQUIREMENTS)
    assert sdk_fingerprint()[:12] in wheel.name


async def test_unchanged_provider_reuses_its_env_without_any_subprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = load_plan(make_config(tmp_path)).provider("t")
    envs = EnvManager()
    env, _ = await envs.ensure(await envs.describe(plan))

    async def no_subprocess(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"reuse ran a subprocess: {args}")

    monkeypatch.setattr(env_commands, "run", no_subprocess)
    again, built = await EnvManager().ensure(await EnvManager().describe(plan))
    assert (again.path, built) == (env.path, False)
    assert envs.status(await envs.describe(plan)) == "built"
    assert f"hostel-testprov @ file://{TESTPROV}" in env.metadata["resolved"]


async def test_editing_a_local_provider_package_changes_the_key(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "mod").mkdir(parents=True)
    (pkg / "mod" / "__init__.py").write_text("X = 1\n")
    path = make_config(tmp_path, specs={"inline/tool_runtime/testprov": provider_spec(pip_packages=[str(pkg)])})
    envs = EnvManager()
    before = (await envs.describe(load_plan(path).provider("t"))).key
    untouched = (await envs.describe(load_plan(path).provider("t"))).key
    (pkg / "mod" / "__init__.py").write_text("X = 2\n")
    after = (await envs.describe(load_plan(path).provider("t"))).key
    assert before == untouched != after


async def test_unsatisfiable_requirement_reports_the_resolver_and_leaves_nothing(tmp_path: Path) -> None:
    spec = provider_spec(pip_packages=["idna==2.10", "idna>=3.7"])
    path = make_config(
        tmp_path,
        specs={"inline/tool_runtime/testprov": spec},
        providers={"tool_runtime": [{"provider_id": "conflict", "provider_type": "inline::testprov"}]},
    )
    envs = EnvManager()
    with pytest.raises(EnvBuildError) as exc:
        await envs.ensure(await envs.describe(load_plan(path).provider("conflict")))
    text = str(exc.value)
    assert exc.value.provider_id == "conflict"
    assert "idna" in exc.value.stderr_tail and "installer said" in text and "uv" in " ".join(exc.value.command)
    assert not [p for p in envs.envs_dir.iterdir() if p.name.startswith(("conflict-", ".conflict-")) and p.is_dir()]


async def test_missing_python_version_lists_what_was_found(tmp_path: Path) -> None:
    path = make_config(
        tmp_path,
        providers={"tool_runtime": [{"provider_id": "t", "provider_type": "inline::testprov", "python": "2.1"}]},
    )
    with pytest.raises(EnvBuildError, match=r"no Python 2.1 found .*found: \d"):
        await EnvManager().describe(load_plan(path).provider("t"))


async def test_an_edited_local_package_is_rebuilt_not_taken_from_the_installer_cache(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import SEEDPROV

    pkg = tmp_path / "seedprov"
    shutil.copytree(SEEDPROV, pkg)
    spec = provider_spec(pip_packages=[str(TESTPROV), str(pkg)])
    path = make_config(tmp_path, specs={"inline/tool_runtime/testprov": spec})
    envs = EnvManager()
    first, _ = await envs.ensure(await envs.describe(load_plan(path).provider("t")))
    (pkg / "hostel_seedprov" / "added_later.py").write_text("VALUE = 2\n")  # pyproject.toml untouched
    second, built = await envs.ensure(await envs.describe(load_plan(path).provider("t")))
    assert built and second.path != first.path
    assert list(second.path.glob("lib/python*/site-packages/hostel_seedprov/added_later.py"))


async def test_a_local_provider_is_built_into_a_wheel_once_for_every_env_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[tuple[str, ...]] = []
    real_run = env_commands.run

    async def recorded(command: Any, **kwargs: Any) -> Any:
        commands.append(tuple(command))
        return await real_run(command, **kwargs)

    monkeypatch.setattr(env_commands, "run", recorded)
    envs = EnvManager(tmp_path / "home")
    loose = load_plan(make_config(tmp_path / "loose")).provider("t")
    constrained = load_plan(
        make_config(tmp_path / "constrained", specs={"inline/tool_runtime/testprov": provider_spec()})
    ).provider("t")
    constrained = constrained.with_worker(constraints=("pydantic>=2",))

    def wheel_builds() -> int:
        return sum(1 for c in commands if "build" in c[1:3] or "wheel" in c)

    first, _ = await envs.ensure(await envs.describe(loose))
    assert wheel_builds() == 1
    (kept,) = (Path(w) for w in first.metadata["local_wheels"])
    os.utime(kept, (time.time() - 7200, time.time() - 7200))
    spec = await envs.describe(constrained)
    interpreter = Path(spec.python.path)  # the same interpreter by its other name (python / python3)
    other_name = interpreter.with_name("python3" if interpreter.name == "python" else "python")
    assert other_name.exists()
    spec = dataclasses.replace(spec, python=dataclasses.replace(spec.python, path=str(other_name)))
    second, built = await envs.ensure(spec)
    assert built and second.path != first.path
    assert wheel_builds() == 1  # the second env installed the wheel the first one built
    assert first.metadata["local_wheels"] == second.metadata["local_wheels"]
    assert kept.stat().st_mtime > time.time() - 3600  # reusing it marks it in use, so prune spares it
    assert kept.parent == envs.local_wheels_dir and list(kept.glob("hostel_testprov-0.1.0-*.whl"))
    for env in (first, second):  # installed, importable, and locked as the directory, not the cached wheel
        assert env.metadata["import_check"]["ok"]
        assert f"hostel-testprov @ file://{TESTPROV}" in env.metadata["resolved"]
    assert envs.unused_local_wheels(min_age_s=0) == []


def test_prune_finds_local_wheels_no_env_uses_once_they_are_old(tmp_path: Path) -> None:
    envs = EnvManager(tmp_path / "home")
    used, unused, young = (envs.local_wheels_dir / name for name in ("used", "unused", "young"))
    for path in (used, unused, young):
        path.mkdir(parents=True)
    for path in (used, unused):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    (envs.envs_dir / "t-1").mkdir(parents=True)
    (envs.envs_dir / "t-1" / "hostel-env.json").write_text(json.dumps({"local_wheels": [str(used)]}))
    assert envs.unused_local_wheels() == [unused]


@pytest.mark.parametrize("installer", ["uv", "pip"])
async def test_a_built_env_holds_bytecode_for_what_a_worker_imports_even_where_python_writes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: str
) -> None:
    """Workers import from compiled bytecode from their first start, whatever PYTHONDONTWRITEBYTECODE says."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    envs = EnvManager(tmp_path / "home", installer=installer)  # type: ignore[arg-type]
    env, built = await envs.ensure(await envs.describe(load_plan(make_config(tmp_path)).provider("t")))
    assert built
    site = next((env.path / "lib").glob("python3.*/site-packages"))

    def compiled(module: str) -> bool:
        source = site / f"{module}.py"
        assert source.exists(), source
        return bool(list(source.parent.glob(f"__pycache__/{source.stem}.cpython-*.pyc")))

    for module in (
        "hostel_sdk/worker",
        "hostel_sdk/_service",
        "grpc/aio/_server",
        "pydantic/main",
        "hostel_testprov/__init__",
    ):
        assert compiled(module), f"no bytecode for {module}"
    if installer == "uv":  # not the whole env (pip compiles everything itself)
        assert not compiled("pydantic/v1/main")


async def test_the_cache_is_private_and_an_env_others_may_write_is_refused(tmp_path: Path) -> None:
    plan = load_plan(make_config(tmp_path)).provider("t")
    home = tmp_path / "home"
    envs = EnvManager(home)
    env, _ = await envs.ensure(await envs.describe(plan))
    assert (home.stat().st_mode & 0o777) == 0o700 and (home / "envs").stat().st_mode & 0o777 == 0o700
    os.chmod(env.path, 0o777)  # as if someone could have planted code in it
    with pytest.raises(EnvBuildError, match=r"writable by other users, and hostel would run what it holds"):
        await envs.ensure(await envs.describe(plan))
    os.chmod(env.path, 0o755)
    assert (await envs.ensure(await envs.describe(plan)))[0].path == env.path


async def test_a_credential_in_a_requirement_url_is_never_written_or_shown(tmp_path: Path) -> None:
    url = "https://alice:s3cr3t-token@127.0.0.1:9/simple/nothing-here.whl"
    spec = provider_spec(pip_packages=[str(TESTPROV), f"nothing-here @ {url}"])
    path = make_config(tmp_path, specs={"inline/tool_runtime/testprov": spec})
    envs = EnvManager(tmp_path / "home")
    with pytest.raises(EnvBuildError) as exc:
        await envs.ensure(await envs.describe(load_plan(path).provider("t")))
    text = str(exc.value) + " ".join(exc.value.requirements) + " ".join(exc.value.command)
    assert "s3cr3t-token" not in text and "https://***@127.0.0.1:9/simple/nothing-here.whl" in text
    written = [p.read_text(errors="replace") for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert not any("s3cr3t-token" in content for content in written)
