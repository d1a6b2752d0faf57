"""Bundles: everything a ``--locked`` build needs, in one file, for a machine with no package index.

``hostel pack`` (on a connected machine, after ``hostel lock``) writes a tar file holding, for every provider
it packs, a wheel for each pinned distribution (the index's own file, checked against the lock's hashes, or a
wheel built here from the index's sdist when there is no wheel for this platform and Python), the wheels of
the provider's local packages, the hostel-sdk wheel, and the managed Python (uv's) the env is built with, if it
is one (``--no-interpreters``: not); beside them the lock and the provider specs the run config reads, and
``manifest.json``, which lists every file with its sha256.

``hostel build --locked --bundle FILE`` unpacks it under ``$HOSTEL_HOME/bundles/`` (once per bundle), checks
every file against the manifest, places its Pythons under ``$HOSTEL_HOME/interpreters``, and builds each env
with the installer offline, finding distributions in the
bundle only; the lock's hashes are checked as in any locked build. The envs are the same as a connected
locked build's, under the same keys. See docs/envs.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from hostel import __version__
from hostel._environ import installer_environ
from hostel.envs import commands
from hostel.envs.hashes import hashable, hashed_requirements
from hostel.envs.interpreters import MANAGED_DIR, managed_install, managed_roots
from hostel.envs.localwheels import cached_wheel, wheel_dir
from hostel.envs.sdkwheel import sdk_wheel
from hostel.envs.spec import EnvSpec, local_dir, tree_hash
from hostel.errors import ConfigError, EnvBuildError, Problem

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class Bundle:
    """An unpacked bundle whose every file matched its manifest."""

    root: Path
    manifest: Mapping[str, Any]

    @property
    def wheelhouse(self) -> Path:
        """Where the pinned distributions' wheels are (the installer's ``--find-links``)."""
        return self.root / "wheels"

    def provider(self, provider_id: str) -> Mapping[str, Any]:
        """What the bundle holds for one provider; ``EnvBuildError`` naming it if the bundle lacks it."""
        entry: Mapping[str, Any] | None = self.manifest["providers"].get(provider_id)
        if entry is None:
            packed = ", ".join(sorted(self.manifest["providers"])) or "none"
            raise EnvBuildError(
                f"the bundle lacks provider {provider_id!r} (it holds: {packed}); pack it on a connected machine "
                f"with `hostel pack CONFIG -o FILE` (without --provider, or with --provider {provider_id})",
                provider_id=provider_id,
            )
        return entry

    def wheels(self, provider_id: str) -> list[Path]:
        """The wheels of the provider's pinned distributions, and of its local packages."""
        entry = self.provider(provider_id)
        names = [self.wheelhouse / name for name in entry.get("wheels", {}).values()]
        return names + [self.root / relpath for relpath in entry.get("local_wheels", {}).values()]

    def extra_hashes(self, provider_id: str) -> dict[str, list[str]]:
        """For pins the index had only as an sdist: the sha256 of the wheel ``hostel pack`` built from it."""
        built = self.provider(provider_id).get("built_from_sdist", {})
        return {pin: [str(info["wheel_sha256"])] for pin, info in built.items()}

    def place_local_wheels(self, provider_id: str, local_wheels_dir: Path) -> None:
        """Put the provider's local-package wheels where the builder looks for them (it builds none offline)."""
        for name, relpath in self.provider(provider_id).get("local_wheels", {}).items():
            target = local_wheels_dir / name
            if cached_wheel(target) is None:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.root / relpath, target / Path(relpath).name)


def open_bundle(path: Path, home: Path) -> Bundle:
    """Unpack ``path`` under ``home/bundles`` (once per bundle content) and check every file against the
    manifest; ``ConfigError`` naming the file for anything missing, extra or different."""
    if not path.is_file():
        raise ConfigError([Problem(str(path), "", "no such bundle; make one with `hostel pack CONFIG -o FILE`")])
    digest = sha256_file(path).removeprefix("sha256:")
    root = home / "bundles" / digest[:24]
    if not (root / ".checked").exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=_mkdir(root.parent)))
        try:
            try:
                with tarfile.open(path) as archive:
                    archive.extractall(staging, filter="data")
            except (tarfile.TarError, OSError) as exc:
                raise ConfigError(
                    [Problem(str(path), "", f"not a hostel bundle ({exc}); make one with `hostel pack CONFIG -o FILE`")]
                ) from None
            _check(path, staging)
            (staging / ".checked").touch()
            if root.exists():
                shutil.rmtree(root)
            os.rename(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _place_interpreters(root / MANAGED_DIR, home / MANAGED_DIR)
    return Bundle(root, json.loads((root / MANIFEST).read_text()))


def _place_interpreters(packed: Path, managed: Path) -> None:
    """Copy the managed Pythons a bundle holds to where hostel looks for them (``$HOSTEL_HOME/interpreters``),
    each whole or not at all."""
    if not packed.is_dir():
        return
    for install in sorted(packed.iterdir()):
        target = managed / install.name
        if target.exists():
            continue
        staging = Path(tempfile.mkdtemp(prefix=f".{install.name}.", dir=_mkdir(managed)))
        try:
            shutil.copytree(install, staging, dirs_exist_ok=True)
            os.rename(staging, target)
            logger.info("installed Python %s from the bundle into %s", install.name, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check(label: Path, root: Path) -> None:
    def refuse(message: str) -> ConfigError:
        return ConfigError([Problem(str(label), "", f"{message}; make the bundle again with `hostel pack`")])

    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise refuse(f"not a hostel bundle (its {MANIFEST} is unreadable: {exc})") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise refuse(f"bundle format {manifest.get('format')!r} is not {BUNDLE_FORMAT}")
    files: dict[str, str] = manifest.get("files", {})
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    for relpath in sorted(present - set(files)):
        raise refuse(f"{relpath} is in the bundle but not in its manifest")
    for relpath, expected in sorted(files.items()):
        if relpath not in present:
            raise refuse(f"{relpath} is in the manifest but not in the bundle")
        found = sha256_file(root / relpath)
        if found != expected:
            raise refuse(
                f"{relpath} does not match its manifest (sha256 {found}, expected {expected}): tampered or damaged"
            )


class Packer:
    """Collects one bundle's files in a staging directory, then writes the tar file."""

    def __init__(self, home: Path, staging: Path, *, pass_env: Sequence[str] = (), interpreters: bool = True) -> None:
        """``interpreters``: also pack the managed Python (uv's) each provider's env is built with."""
        self.home = home
        self.root = staging
        self.pass_env = tuple(pass_env)
        self.interpreters = interpreters
        self.providers: dict[str, dict[str, Any]] = {}
        (staging / "wheels").mkdir(parents=True)

    async def add(self, spec: EnvSpec) -> None:
        """Everything ``spec``'s locked build installs: its pins' wheels, its local wheels, the sdk wheel."""
        entry: dict[str, Any] = {"python": spec.python.version, "pins": len(spec.pins), "built_from_sdist": {},
                                 "local_wheels": {}}  # fmt: skip
        hashes = dict(spec.pin_hashes)
        indexed = [pin for pin in spec.pins if hashable(pin)]
        if not await self._download(spec, indexed, hashes, binary_only=True):
            for pin in indexed:  # one at a time: which have a wheel, which only an sdist
                if not await self._download(spec, [pin], hashes, binary_only=True):
                    entry["built_from_sdist"][pin] = await self._wheel_from_sdist(spec, pin, hashes)
        entry["wheels"] = _pin_wheels(indexed, self.root / "wheels")
        for pin in spec.pins:
            source = local_dir(pin)
            if source:
                entry["local_wheels"].update(self._local_wheel(spec, source))
        sdk = sdk_wheel(self.home / "wheels", spec.sdk)
        _copy(sdk, self.root / "sdk" / sdk.name)
        entry["interpreter"] = self._interpreter(spec) if self.interpreters else None
        self.providers[spec.provider_id] = entry

    def _interpreter(self, spec: EnvSpec) -> str | None:
        """Pack the provider's Python if it is a managed, relocatable one (uv's, or one a bundle brought): the
        target may not have it. Others (the system's, pyenv's) are tied to their paths: the target needs its own."""
        install = managed_install(spec.python.path, managed_roots(self.home))
        if install is None:
            return None
        target = self.root / MANAGED_DIR / install.name
        if not target.exists():
            shutil.copytree(install, target, ignore=shutil.ignore_patterns("__pycache__"))
        return install.name

    async def _download(self, spec: EnvSpec, pins: list[str], hashes: Mapping[str, Sequence[str]], *,
                        binary_only: bool) -> bool:  # fmt: skip
        """pip's download of exactly these pins' files, in its hash-checking mode; whether it succeeded."""
        if not pins:
            return True
        with tempfile.TemporaryDirectory(prefix="hostel-pack-") as tmp:
            requirements = Path(tmp) / "pins.txt"
            requirements.write_text(hashed_requirements((p, hashes[p]) for p in pins))
            target = self.root / "wheels" if binary_only else Path(tmp) / "sdist"
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                       "--dest", str(target), "-r", str(requirements)]  # fmt: skip
            if binary_only:
                command += ["--only-binary", ":all:", "--python-version", spec.python.version, "--implementation", "cp"]
            else:
                command += ["--no-binary", ":all:"]
            done = await commands.run(command, timeout=1800, env=installer_environ(os.environ, pass_env=self.pass_env))
            if done.returncode != 0:
                if not binary_only:
                    raise EnvBuildError(
                        f"could not download {pins[0]} (provider {spec.provider_id!r}) as a wheel or an sdist",
                        provider_id=spec.provider_id, command=command, stderr_tail=commands.tail(done.stderr),
                    )  # fmt: skip
                return False
            if not binary_only:
                shutil.copytree(target, self.root / "sdists", dirs_exist_ok=True)
        return True

    async def _wheel_from_sdist(self, spec: EnvSpec, pin: str, hashes: Mapping[str, Sequence[str]]) -> dict[str, str]:
        """Download the pin's sdist (checked against the lock) and build its wheel for the provider's Python."""
        before = set((self.root / "sdists").glob("*")) if (self.root / "sdists").is_dir() else set()
        await self._download(spec, [pin], hashes, binary_only=False)
        sdist = next(iter(set((self.root / "sdists").glob("*")) - before))
        import uv

        with tempfile.TemporaryDirectory(prefix="hostel-pack-wheel-") as out:
            command = [uv.find_uv_bin(), "build", "--quiet", "--wheel", "--python", spec.python.path,
                       "--out-dir", out, str(sdist)]  # fmt: skip
            done = await commands.run(command, timeout=1800, env=installer_environ(os.environ, pass_env=self.pass_env))
            wheels = list(Path(out).glob("*.whl"))
            if done.returncode != 0 or len(wheels) != 1:
                raise EnvBuildError(
                    f"could not build a wheel of {pin} (provider {spec.provider_id!r}) from its sdist",
                    provider_id=spec.provider_id, command=command, stderr_tail=commands.tail(done.stderr),
                )  # fmt: skip
            wheel = _copy(wheels[0], self.root / "wheels" / wheels[0].name)
        (self.root / "sdists" / sdist.name).unlink()  # built: the wheel is what the target installs
        return {"wheel": wheel.name, "wheel_sha256": sha256_file(wheel), "sdist": sdist.name}

    def _local_wheel(self, spec: EnvSpec, source: str) -> dict[str, str]:
        digest = dict(spec.sources).get(source) or tree_hash(Path(source))
        found = cached_wheel(wheel_dir(self.home / "wheels" / "local", source, digest, spec.python.version))
        if found is None:
            raise EnvBuildError(
                f"provider {spec.provider_id!r}: no wheel of its local package {source}; build its env first "
                "(`hostel build --locked CONFIG`), then pack",
                provider_id=spec.provider_id,
            )
        relpath = f"local/{found.parent.name}/{found.name}"
        _copy(found, self.root / relpath)
        return {found.parent.name: relpath}

    def add_files(self, files: Iterable[tuple[Path, str]]) -> None:
        """Copy config-side files (the lock, spec files) into the bundle under ``config/``."""
        for source, relpath in files:
            _copy(source, self.root / "config" / relpath)

    def write(self, out: Path) -> dict[str, Any]:
        """Write the manifest and the tar file (atomically); the manifest."""
        files = {
            p.relative_to(self.root).as_posix(): sha256_file(p) for p in sorted(self.root.rglob("*")) if p.is_file()
        }
        manifest = {
            "format": BUNDLE_FORMAT,
            "hostel": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "platform": sysconfig.get_platform(),
            "providers": self.providers,
            "files": files,
        }
        (self.root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream, tarfile.open(fileobj=stream, mode="w") as archive:
                for path in sorted(self.root.rglob("*")):
                    if path.is_file():
                        archive.add(path, arcname=path.relative_to(self.root).as_posix(), filter=_plain)
            os.chmod(tmp, 0o644)  # meant to be copied to another machine, as a lock is committed
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return manifest


def _pin_wheels(pins: Sequence[str], wheelhouse: Path) -> dict[str, str]:
    """Which wheel in ``wheelhouse`` is each ``name==version`` pin's (what an image build copies)."""
    by_release: dict[tuple[str, str], str] = {}
    for wheel in wheelhouse.glob("*.whl"):
        name, release, _, _ = parse_wheel_filename(wheel.name)
        by_release[(str(name), str(release))] = wheel.name
    found = {}
    for pin in pins:
        requirement = Requirement(pin)
        pinned = next((s.version for s in requirement.specifier if s.operator == "=="), None)
        key = (str(canonicalize_name(requirement.name)), str(Version(pinned)) if pinned else "")
        if key in by_release:
            found[pin] = by_release[key]
    return found


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members without the packing user's names or times: the same inputs give the same bytes."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
