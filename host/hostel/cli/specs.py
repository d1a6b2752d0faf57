"""``hostel specs extract``: copy the provider spec YAML a package ships as data into a providers.d tree.

Some packages (lightspeed-stack-providers) declare their providers only as YAML files inside the package,
laid out as ``{remote,inline}/{api}/{name}.yaml`` under some directory. This downloads the package alone
(no dependencies, nothing imported), finds those files, and copies them where a run config's
``external_providers_dir`` can point.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hostel.envs import commands
from hostel.errors import EnvBuildError
from hostel_sdk.api import API_NAMES


def find_spec_files(root: Path) -> list[tuple[str, str, Path]]:
    """``(kind, api, file)`` for every ``{remote,inline}/{api}/*.yaml`` below ``root``."""
    found = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        kind, api = path.parent.parent.name, path.parent.name
        if kind in ("remote", "inline") and api in API_NAMES:
            found.append((kind, api, path))
    return found


async def extract(requirement: str, destination: Path, *, python_version: str = "3.12") -> list[Path]:
    """Download ``requirement`` (without dependencies) and copy its spec YAML into ``destination``.

    ``python_version`` only picks which release is eligible (most providers now require 3.12); nothing runs.
    """
    import uv

    with tempfile.TemporaryDirectory(prefix="hostel-specs-") as tmp:
        command = [uv.find_uv_bin(), "pip", "install", "--quiet", "--no-deps", "--target", tmp]
        command += ["--python-version", python_version, requirement]
        done = await commands.run(command, timeout=600)
        if done.returncode != 0:
            raise EnvBuildError(
                f"cannot download {requirement!r} to look for its provider specs",
                command=command,
                stderr_tail=commands.tail(done.stderr),
            )
        copied = []
        for kind, api, path in find_spec_files(Path(tmp)):
            target = destination / kind / api / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied.append(target)
    return copied
