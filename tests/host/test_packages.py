"""Which packages reach a provider's venv: conflicting pins side by side, and seed-style providers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostel import Host
from hostel.envs.spec import provider_package
from hostel.errors import RoutingError
from tests.conftest import EXAMPLES, SEEDPROV, make_config


async def test_conflicting_pins_are_co_hosted() -> None:
    async with Host.from_config(EXAMPLES / "conflicting_pins" / "run.yaml") as host:
        old = await host.provider("old").versions()
        new = await host.provider("new").versions()
    assert old["idna"] == "2.10"
    assert tuple(int(x) for x in new["idna"].split(".")[:2]) >= (3, 7)
    assert len({old["pid"], new["pid"], os.getpid()}) == 3
    assert len({old["prefix"], new["prefix"], sys.prefix}) == 3


@pytest.fixture(scope="session")
def seed_installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed provider installed (as its docs say) into a site dir the host can see, by a real installer."""
    import uv

    target = tmp_path_factory.mktemp("host-site")
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(SEEDPROV)], check=True
    )
    return target


async def test_seed_style_provider_installed_in_the_host_reaches_its_venv(
    tmp_path: Path, seed_installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(seed_installed))
    assert provider_package("hostel_seedprov", ["idna==3.7"]) == str(SEEDPROV)
    spec = {
        "adapter": {
            "adapter_type": "seed",
            "module": "hostel_seedprov",
            "config_class": "hostel_seedprov.SeedConfig",
            "pip_packages": ["idna==3.7"],  # only its dependencies, as in the seed's example
        }
    }
    path = make_config(
        tmp_path,
        specs={"remote/inference/seed": spec},
        providers={
            "inference": [{"provider_id": "seed", "provider_type": "remote::seed", "config": {"url": "http://x"}}]
        },
    )
    async with Host.from_config(path) as host:
        info = await host.provider("seed").info()
    assert info["url"] == "http://x" and info["idna"] == "3.7"
    assert info["module_file"].startswith(info["prefix"])  # installed into the venv, not read from the host


def test_index_installed_distribution_is_pinned_to_its_version() -> None:
    from importlib.metadata import version

    import yaml

    assert yaml  # imported from the host env
    assert provider_package("yaml", []) == f"pyyaml=={version('PyYAML')}"
    assert provider_package("yaml", ["PyYAML>=5"]) is None  # already required
    assert provider_package("hostel_not_installed_anywhere", []) is None


async def test_a_provider_declared_only_by_an_entry_point(tmp_path: Path) -> None:
    from tests.conftest import REPO

    config = tmp_path / "run.yaml"
    config.write_text(
        "providers:\n  tool_runtime:\n    - provider_id: ep\n      provider_type: inline::epprov\n"
        f"      module: hostel_epprov\n      pip_packages: [{REPO / 'tests' / 'providers' / 'epprov'}]\n"
    )
    envs = Path(os.environ["HOSTEL_HOME"]) / "envs"
    before = set(envs.glob("ep-*"))
    async with Host.from_config(config) as host:
        assert await host.provider("ep").idna_version() == "3.7"  # the spec's own pip_packages were installed
        used = host.env("ep")
        assert used is not None and used.python.is_file() and used.metadata["provider_id"] == "ep"
        with pytest.raises(RoutingError, match="no provider 'nope'"):
            host.env("nope")
    # One env, built before the package's spec was known and kept once it was adopted (not a second one).
    assert used is not None and len(set(envs.glob("ep-*")) - before) <= 1 and used.path in set(envs.glob("ep-*"))
    # And pruning for this config keeps it.
    pruned = subprocess.run(
        [sys.executable, "-m", "hostel", "envs", "prune", str(config), "--dry-run"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert pruned.returncode == 0, pruned.stderr
    assert str(used.path) not in pruned.stdout


async def test_specs_shipped_as_package_data_are_extracted_and_run(tmp_path: Path) -> None:
    from tests.conftest import REPO

    package = REPO / "tests" / "providers" / "yamlprov"
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "specs", "extract", str(package), "--to", str(tmp_path / "providers.d")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "inline::yamlprov" in done.stdout
    assert (tmp_path / "providers.d" / "inline" / "tool_runtime" / "yamlprov.yaml").exists()
    config = tmp_path / "run.yaml"
    config.write_text(
        "external_providers_dir: ./providers.d\nproviders:\n  tool_runtime:\n"
        "    - provider_id: y\n      provider_type: inline::yamlprov\n"
        f"      spec_overrides: {{pip_packages: ['{package}']}}\n"  # the index does not have this test package
    )
    async with Host.from_config(config) as host:
        assert await host.provider("y").hello() == "declared by packaged YAML"
