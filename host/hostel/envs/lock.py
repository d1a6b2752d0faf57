"""``hostel.lock``: the exact distributions of every provider env, for reproducible ``--locked`` builds.

The lock sits beside the run config. Per provider it records the hash of what the user controls
(``EnvSpec.inputs``), the pins of the env resolved from it, and the sha256 of every file the index
publishes for each pin; a locked build installs exactly those pins (``--no-deps``) in the installer's
hash-checking mode, and refuses, naming the provider, when its inputs no longer match.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostel._redact import redact_all
from hostel.config import RunConfig
from hostel.errors import ConfigError, Problem

LOCK_FILE = "hostel.lock"
LOCK_FORMAT = 2  # 2: artifact hashes per pin


@dataclass(frozen=True)
class LockedProvider:
    """One provider's pinned env."""

    provider_id: str
    provider_type: str
    python: str
    inputs: str
    pins: tuple[str, ...]
    hashes: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # pin -> sha256:...


@dataclass(frozen=True)
class Lockfile:
    """The parsed ``hostel.lock``."""

    path: Path
    providers: Mapping[str, LockedProvider]

    def pins_for(self, provider_id: str, inputs: str) -> LockedProvider:
        """The locked entry of a provider whose current inputs hash is ``inputs``; ``ConfigError`` if it changed."""
        entry = self.providers.get(provider_id)
        if entry is None:
            raise ConfigError(
                [
                    Problem(
                        str(self.path),
                        provider_id,
                        f"provider {provider_id!r} is not in the lock; run `hostel lock` again",
                    )
                ],
                provider_id=provider_id,
            )
        if entry.inputs != inputs:
            raise ConfigError(
                [
                    Problem(
                        str(self.path),
                        provider_id,
                        f"the spec of provider {provider_id!r} (pip_packages, constraints, python or a local package) "
                        "changed since the lock was written; run `hostel lock` again, or build without --locked",
                    )
                ],
                provider_id=provider_id,
            )
        return entry


def lock_path(config: RunConfig) -> Path:
    """Where the lock for ``config`` lives: beside the config file (or in the working directory)."""
    return (config.source.parent if config.source else Path.cwd()) / LOCK_FILE


def read_lock(path: Path) -> Lockfile:
    """Load a lock file; ``ConfigError`` if it is missing or malformed."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "", "no lock file; create it with `hostel lock CONFIG`")]) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            [Problem(str(path), "", f"unreadable lock file ({exc}); recreate it with `hostel lock CONFIG`")]
        ) from None
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        why = "owned by another user" if info.st_uid != os.getuid() else "writable by other users"
        raise ConfigError(
            [Problem(str(path), "", f"refusing a lock file {why}: it decides what is installed; chmod go-w it")]
        )
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT:
        raise ConfigError(
            [
                Problem(
                    str(path),
                    "format",
                    f"lock format {data.get('format') if isinstance(data, dict) else '?'} is not {LOCK_FORMAT} "
                    "(format 2 records artifact hashes); recreate it with `hostel lock CONFIG`",
                )
            ]
        )
    providers = {}
    for pid, entry in data.get("providers", {}).items():
        providers[pid] = LockedProvider(
            provider_id=pid,
            provider_type=entry["provider_type"],
            python=entry["python"],
            inputs=entry["inputs"],
            pins=tuple(entry["pins"]),
            hashes={pin: tuple(found) for pin, found in (entry.get("hashes") or {}).items()},
        )
    return Lockfile(path=path, providers=providers)


def write_lock(path: Path, providers: Mapping[str, LockedProvider]) -> None:
    """Write the lock atomically."""
    data: dict[str, Any] = {
        "format": LOCK_FORMAT,
        "generated_by": "hostel lock",
        "providers": {
            pid: {k: v for k, v in dataclasses.asdict(p).items() if k != "provider_id"}
            for pid, p in sorted(providers.items())
        },
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(redact_all(data), indent=2) + "\n")
    os.chmod(tmp, 0o644)  # a lock is meant to be committed beside its config
    os.replace(tmp, path)
