"""The sha256 of every file an index publishes for a pinned distribution, for ``hostel.lock``.

A lock that pins only versions lets an index serve different bytes under the same version; one that
records these hashes makes a ``--locked`` build install in the installer's hash-checking mode, which
fails naming the distribution whose bytes differ. Asked of uv (``uv pip compile --generate-hashes``),
which reads the index's published hashes without installing anything. Local directories have no index
hash: they are built into wheels from the exact source tree the lock's inputs hash already covers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from hostel._environ import installer_environ
from hostel.envs import commands
from hostel.errors import EnvBuildError


def hashed_requirements(pins: Iterable[tuple[str, Sequence[str]]]) -> str:
    """A requirements file for the installers' hash-checking mode: ``pin --hash=sha256:... ...`` per line."""
    return "".join(f"{pin} {' '.join(f'--hash={h}' for h in found)}\n" for pin, found in pins)


def hashable(pin: str) -> bool:
    """Whether ``pin`` comes from an index or a remote URL (not a local path)."""
    return "file://" not in pin and not pin.startswith((".", "/"))


def _name(requirement: str) -> str:
    for separator in (" @ ", "==", "@"):
        if separator in requirement:
            return str(canonicalize_name(requirement.split(separator, 1)[0].strip()))
    return str(canonicalize_name(requirement.strip()))


def parse(output: str) -> dict[str, list[str]]:
    """``{canonical name: [sha256:...]}`` from pip-compile style output with ``--hash`` continuation lines."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for raw in output.splitlines():
        line = raw.strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            if current is not None:
                found[current].append(line.removeprefix("--hash="))
            continue
        current = _name(line.split(" --hash=", 1)[0])
        found[current] = [part.removeprefix("--hash=") for part in line.split()[1:] if part.startswith("--hash=")]
    return found


async def artifact_hashes(
    uv_bin: str, pins: Sequence[str], *, python_version: str, provider_id: str, pass_env: Sequence[str] = ()
) -> dict[str, list[str]]:
    """``{pin: [sha256:...]}`` for every ``hashable`` pin; ``EnvBuildError`` naming any the index has none for."""
    wanted = [pin for pin in pins if hashable(pin)]
    if not wanted:
        return {}
    with tempfile.TemporaryDirectory(prefix="hostel-hashes-") as tmp:
        requirements = Path(tmp) / "pins.in"
        requirements.write_text("\n".join(wanted) + "\n")
        command = [
            uv_bin, "pip", "compile", "--quiet", "--generate-hashes", "--no-deps", "--no-header", "--no-annotate",
            "--python-version", python_version, str(requirements),
        ]  # fmt: skip
        done = await commands.run(command, timeout=600, env=installer_environ(os.environ, pass_env=pass_env))
    if done.returncode != 0:
        raise EnvBuildError(
            f"could not read the artifact hashes of provider {provider_id!r}'s pins from the index",
            provider_id=provider_id,
            command=command,
            stderr_tail=commands.tail(done.stderr),
        )
    by_name = parse(done.stdout)
    hashes = {pin: by_name.get(_name(pin), []) for pin in wanted}
    missing = sorted(pin for pin, found in hashes.items() if not found)
    if missing:
        raise EnvBuildError(
            f"the index gave no hash for {', '.join(missing)} (provider {provider_id!r}); a lock cannot pin its bytes",
            provider_id=provider_id,
        )
    return hashes
