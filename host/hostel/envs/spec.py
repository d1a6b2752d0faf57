"""What determines a provider's env, and its key: interpreter, normalised requirements, local sources.

Also finds the distribution that provides a provider's module in the host env (docs/config.md). Reads files
(local sources, the host's distribution metadata); runs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from hostel.envs.interpreters import Interpreter

# 2: envs hold the bytecode a worker start imports (envs of format 1 are rebuilt once to get it).
METADATA_FORMAT = 2
_SKIP_DIRS = {".git", "__pycache__", ".venv", "build", "dist", ".tox", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def is_path(requirement: str) -> bool:
    return os.path.isabs(requirement) and os.path.exists(requirement)


def tree_hash(root: Path) -> str:
    """Content hash of a local source directory, so an edit triggers a rebuild."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath, name)
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()


# What a tracing worker needs in its venv (docs/observability.md), resolved together with the provider's pins;
# with hostel.telemetry.instrument also what lists and loads instrumentations.
TELEMETRY_REQUIREMENTS = ("opentelemetry-sdk>=1.20", "opentelemetry-exporter-otlp-proto-http>=1.20")
INSTRUMENT_REQUIREMENTS = ("opentelemetry-instrumentation>=0.41b0",)


def asks_instrumentations(requirements: Sequence[str]) -> bool:
    """Whether an env's requirements are those of ``hostel.telemetry.instrument``."""
    return normalise(INSTRUMENT_REQUIREMENTS[0]) in requirements


def normalise(requirement: str) -> str:
    if is_path(requirement):
        return requirement
    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return requirement.strip()
    req.name = canonicalize_name(req.name)
    return str(req)


def local_dir(requirement: str) -> str:
    """The directory of a local-directory requirement (a path, or a pinned ``name @ file:///dir``), else ''."""
    if is_path(requirement) and os.path.isdir(requirement):
        return requirement
    _, sep, url = requirement.partition(" @ file://")
    if sep and os.path.isdir(unquote(url.strip())):
        return unquote(url.strip())
    return ""


def _requirement_name(requirement: str) -> str | None:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return None


def provider_package(module: str, requirements: Sequence[str]) -> str | None:
    """The requirement for the distribution providing ``module`` in the host env, unless already required.

    A local or editable install is installed from its source directory; an index install as ``name==version``.
    """
    top = module.split(".", maxsplit=1)[0]
    try:
        found = importlib.util.find_spec(top)  # locates without importing; cheap, unlike a full scan
    except (ImportError, ValueError):
        found = None
    if found is None:
        return None
    names = _packages_distributions(tuple(sys.path)).get(top, [])
    if not names:
        return None
    name = names[0]
    wanted = {_requirement_name(r) for r in requirements}
    if canonicalize_name(name) in wanted:
        return None
    for req in requirements:  # a local directory that holds the module's package already provides it
        if is_path(req) and any((Path(req) / sub / top).exists() for sub in ("", "src")):
            return None
    dist = importlib.metadata.distribution(name)
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct)
        url = info.get("url", "")
        if url.startswith("file://") and "dir_info" in info:
            return unquote(urlparse(url).path)
    return f"{canonicalize_name(name)}=={dist.version}"


@functools.lru_cache(maxsize=4)
def _packages_distributions(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    """Top-level import names to distributions, for one ``sys.path`` (a full scan: cached)."""
    return importlib.metadata.packages_distributions()


@dataclass(frozen=True)
class EnvSpec:
    """Everything that determines a provider's env; its ``key`` names the env."""

    provider_id: str
    provider_type: str
    python: Interpreter
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]  # (local directory, content hash)
    sdk: str  # hostel-sdk fingerprint
    pins: tuple[str, ...] = ()  # from hostel.lock: install exactly these, without resolving
    pin_hashes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # from hostel.lock: (pin, sha256 of its files)
    probe: str = ""  # JSON request for hostel_sdk._probe: spec discovery and the import check after building
    sandbox: str = ""  # the provider's sandbox (JSON), which its import check runs in too; not an input of the env

    @property
    def inputs(self) -> str:
        """Hash of what the user controls (Python version, requirements, constraints, local sources).

        ``hostel.lock`` records it, so a locked build can tell that a spec changed since the lock.
        """
        data = {
            "python": self.python.version,
            "requirements": sorted(self.requirements),
            "constraints": sorted(self.constraints),
            "sources": sorted(self.sources),
            "probe": self.probe,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @property
    def key(self) -> str:
        """Hash of everything that determines the env (the interpreter's version, not its path)."""
        data = {"inputs": self.inputs, "sdk": self.sdk, "pins": sorted(self.pins), "format": METADATA_FORMAT}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    @property
    def dirname(self) -> str:
        """``<provider id>-<key prefix>``."""
        return f"{slug(self.provider_id)}-{self.key[:16]}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:64]
