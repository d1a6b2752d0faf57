"""Wheels of local source directories, built once per content and Python version and kept for later envs.

uv and pip build a source directory named on their command line again at every install (~0.6 s for a
small hatchling project here), and uv caches one named in a requirements file by its ``pyproject.toml``
mtime alone, which misses edits. Keyed by the directory's content hash instead, an env whose local
provider has not changed installs the wheel built for an earlier env; an edit builds a new one.
This module only names, finds and publishes wheels; ``hostel.envs`` runs the build.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from hostel.envs.spec import slug


def wheel_dir(root: Path, source: str, content_hash: str, python_version: str) -> Path:
    """Where the wheel of ``source`` with this content, built for this Python version, is kept."""
    key = hashlib.sha256(f"{content_hash}\0{python_version}".encode()).hexdigest()[:24]
    return root / f"{slug(Path(source).name)}-{key}"


def cached_wheel(directory: Path) -> Path | None:
    """The one wheel in ``directory``, or None (no directory, or an unfinished or odd one)."""
    wheels = sorted(directory.glob("*.whl")) if directory.is_dir() else []
    return wheels[0] if len(wheels) == 1 else None


def build_command(installer: str, uv_bin: str | None, python: str, source: str, out_dir: Path) -> list[str]:
    """The command that builds ``source`` into a wheel in ``out_dir`` for ``python`` (no dependencies)."""
    if installer == "uv":
        assert uv_bin is not None
        return [uv_bin, "build", "--quiet", "--wheel", "--python", python, "--out-dir", str(out_dir), source]
    pip = [sys.executable, "-m", "pip", "--python", python]
    return [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out_dir), source]


def publish(built: Path, final: Path) -> Path | None:
    """Move a finished build directory into place (if it holds a single wheel) and return the wheel kept at
    ``final``, or None. The rename is atomic: a concurrent build of the same wheel either lands first (and
    ours stays behind, for the caller to delete with whatever else is left) or finds ours."""
    if cached_wheel(built) is not None:
        with contextlib.suppress(OSError):  # another build published it first
            os.rename(built, final)
    return cached_wheel(final)


def distribution_sources(wheels: Mapping[Path, str]) -> dict[str, str]:
    """Canonical distribution name -> source directory, for wheels built from local directories."""
    found = {}
    for wheel, source in wheels.items():
        try:
            name = parse_wheel_filename(wheel.name)[0]
        except InvalidWheelFilename:
            continue
        found[str(name)] = source
    return found
