"""Finds the Python a provider's venv is built with: the host's own, a path, or a version ("3.12").

Versions are looked up where users keep interpreters: PATH, pyenv, uv-managed Pythons, and the managed Pythons
a bundle brought (``$HOSTEL_HOME/interpreters``, docs/envs.md).
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hostel.envs import commands

# Under $HOSTEL_HOME: the managed Pythons bundles brought, one ``cpython-<version>-<platform>`` directory each.
MANAGED_DIR = "interpreters"

_PROBE = "import platform, sys; print(platform.python_version()); print(sys.executable)"


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter: its path and full version."""

    path: str
    version: str


class InterpreterNotFoundError(LookupError):
    """No interpreter matches; ``found`` lists those seen."""

    def __init__(self, wanted: str, found: list[Interpreter]) -> None:
        listing = ", ".join(f"{i.version} ({i.path})" for i in found) or "none"
        super().__init__(
            f"no Python {wanted} found on PATH, under pyenv or uv; found: {listing}. "
            f"Install it (e.g. `uv python install {wanted}`) or set python: to an interpreter path"
        )
        self.found = found


def host_interpreter() -> Interpreter:
    """The interpreter running hostel."""
    return Interpreter(sys.executable, platform.python_version())


def uv_python_dir() -> Path:
    """Where uv keeps the Pythons it installs (``uv python install``)."""
    return Path(os.environ.get("UV_PYTHON_INSTALL_DIR", os.path.expanduser("~/.local/share/uv/python")))


def managed_roots(home: Path) -> list[Path]:
    """Where managed (relocatable) Pythons are kept: uv's directory, and the one under ``home`` that bundles fill."""
    return [uv_python_dir(), home / MANAGED_DIR]


def managed_install(path: str, roots: Sequence[Path]) -> Path | None:
    """The installation directory (``cpython-<version>-<platform>``) of the interpreter at ``path`` if it is a
    managed, relocatable one kept under one of ``roots`` (uv's, a bundle's), else ``None``."""
    resolved = Path(path).resolve()
    for root in roots:
        try:
            parts = resolved.relative_to(root.resolve()).parts
        except (ValueError, OSError):
            continue
        if len(parts) > 1 and parts[0].startswith("cpython-"):
            return root.resolve() / parts[0]
    return None


def _candidates(wanted: str, managed: Sequence[Path]) -> list[str]:
    paths: list[str] = []
    for name in (f"python{wanted}", "python3", "python"):
        found = shutil.which(name)
        if found:
            paths.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    paths += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{wanted}*", "bin", "python3")), reverse=True)
    for root in managed:
        paths += sorted(glob.glob(os.path.join(root, f"cpython-{wanted}*", "bin", "python3")), reverse=True)
    return list(dict.fromkeys(paths))


class InterpreterCache:
    """Remembers probed interpreter versions by path and mtime, so an unchanged setup runs no probe."""

    def __init__(self, home: Path) -> None:
        """``home``: the HOSTEL_HOME whose cache file it keeps and whose bundled Pythons it finds."""
        self._home = home
        self._path = home / "interpreters.json"
        self._loaded: dict[str, list[object]] | None = None  # read on first use: constructors do no I/O

    @property
    def _data(self) -> dict[str, list[object]]:
        if self._loaded is None:
            try:
                self._loaded = json.loads(self._path.read_text())
            except (OSError, ValueError):
                self._loaded = {}
        return self._loaded

    async def probe(self, path: str) -> Interpreter | None:
        """The interpreter at ``path``, or ``None`` if it does not run."""
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        cached = self._data.get(path)
        if cached and cached[0] == mtime:
            return Interpreter(path, str(cached[1]))
        try:
            done = await commands.run([path, "-c", _PROBE], timeout=30)
        except OSError:
            return None
        if done.returncode != 0:
            return None
        version = done.stdout.split()[0]
        self._data[path] = [mtime, version]
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._data))
            os.replace(tmp, self._path)
        except OSError:
            pass
        return Interpreter(path, version)

    async def find(self, wanted: str | None) -> Interpreter:
        """Resolve a provider's ``python:`` setting; raise ``InterpreterNotFoundError`` listing what exists."""
        if not wanted:
            return host_interpreter()
        if os.sep in wanted:
            found = await self.probe(os.path.expanduser(wanted))
            if found is None:
                raise InterpreterNotFoundError(wanted, [])
            return found
        seen = []
        for path in _candidates(wanted, managed_roots(self._home)):
            found = await self.probe(path)
            if found is None:
                continue
            if found.version == wanted or found.version.startswith(wanted + "."):
                return found
            seen.append(found)
        raise InterpreterNotFoundError(wanted, seen)
