"""One virtualenv per provider, built with uv (or pip), cached by a key of everything that determines it.

Builds are transactions: build beside the target under a per-env file lock, write metadata last, rename
into place. A failed or interrupted build leaves nothing a later run would trust. This module knows
nothing of processes or workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hostel._redact import redact_all
from hostel.config.plan import ProviderPlan
from hostel.envs.builder import EnvBuilder, hint, touch
from hostel.envs.bundle import Bundle
from hostel.envs.interpreters import InterpreterCache, InterpreterNotFoundError
from hostel.envs.lock import Lockfile, read_lock
from hostel.envs.sdkwheel import sdk_fingerprint
from hostel.envs.spec import (
    INSTRUMENT_REQUIREMENTS,
    METADATA_FORMAT,
    TELEMETRY_REQUIREMENTS,
    EnvSpec,
    is_path,
    normalise,
    provider_package,
    slug,
    tree_hash,
)
from hostel.errors import EnvBuildError

logger = logging.getLogger(__name__)

METADATA_FILE = "hostel-env.json"
LAST_USED_FILE = "hostel-last-used"
# Envs built at once (hostel build, hostel run): installers are I/O- and CPU-bound; more only thrash.
BUILD_CONCURRENCY = 4

EnvStatus = Literal["built", "stale", "missing"]
InstallerName = Literal["auto", "uv", "pip"]


def default_home() -> Path:
    """``$HOSTEL_HOME``, else ``$XDG_CACHE_HOME/hostel``, else ``~/.cache/hostel``."""
    if os.environ.get("HOSTEL_HOME"):
        return Path(os.environ["HOSTEL_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "hostel"


@dataclass(frozen=True)
class Env:
    """A built provider env."""

    path: Path
    key: str
    metadata: dict[str, Any]

    @property
    def python(self) -> Path:
        """The env's interpreter."""
        return self.path / "bin" / "python"


class EnvManager:
    """Builds and reuses provider envs under ``<home>/envs``: at most ``BUILD_CONCURRENCY`` builds at a time,
    whoever asks (a start, a reload, ``hostel build``), so that callers may ask for every env at once."""

    def __init__(
        self,
        home: Path | None = None,
        *,
        installer: InstallerName = "auto",
        build_timeout_s: float = 600.0,
        lock: Lockfile | Path | None = None,
        pass_env: Sequence[str] = (),
        bundle: Bundle | None = None,
    ) -> None:
        """``lock``: build exactly the pins of a ``hostel.lock`` (``--locked``), or the path of one, read when
        the first env is described. ``pass_env``: environment variables installers and probes get besides the
        minimal ones and the installer's own. ``bundle``: build from it alone, offline (it needs ``lock``)."""
        self.pass_env = tuple(pass_env)
        self.home = (home or default_home()).expanduser()
        self._lock = lock
        self.envs_dir = self.home / "envs"
        self.local_wheels_dir = self.home / "wheels" / "local"
        self.installer = installer
        self.build_timeout_s = build_timeout_s
        self._interpreters = InterpreterCache(self.home)
        self.bundle = bundle
        self._builder = EnvBuilder(
            self.home, installer=installer, build_timeout_s=build_timeout_s, pass_env=self.pass_env, bundle=bundle
        )
        self._sdk: str | None = None
        self._building: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _build_slot(self) -> asyncio.Semaphore:
        """The running loop's build slots (a manager may outlive one loop, as a CLI's does)."""
        loop = asyncio.get_running_loop()
        if self._building is None or self._building[0] is not loop:
            self._building = (loop, asyncio.Semaphore(BUILD_CONCURRENCY))
        return self._building[1]

    def _sdk_fingerprint(self) -> str:
        if self._sdk is None:
            self._sdk = sdk_fingerprint()
        return self._sdk

    async def describe(self, plan: ProviderPlan) -> EnvSpec:
        """Work out what determines ``plan``'s env (no installer runs). With a lock, check it and pin."""
        try:
            python = await self._interpreters.find(plan.worker.python)
        except InterpreterNotFoundError as exc:
            raise EnvBuildError(str(exc), provider_id=plan.provider_id) from None
        requirements = [normalise(r) for r in plan.worker.pip_packages]
        # A `module:` entry's env is keyed by what the entry says, before and after its package's spec is adopted.
        module, config_class = plan.spec.declared or (plan.spec.module, plan.spec.config_class)
        package = provider_package(module, requirements)
        if package is not None:
            logger.info(
                "provider %s: installing %s (provides module %s in the host env)",
                plan.provider_id,
                package,
                module,
            )
            requirements.append(normalise(package))
        if plan.worker.telemetry is not None:  # the worker sets up the OpenTelemetry SDK (docs/observability.md)
            extra = [
                *TELEMETRY_REQUIREMENTS,
                *(INSTRUMENT_REQUIREMENTS if plan.worker.telemetry.get("instrument") else ()),
            ]
            requirements += [normalise(r) for r in extra]
        sources = tuple((r, tree_hash(Path(r))) for r in requirements if is_path(r) and Path(r).is_dir())
        spec = EnvSpec(
            provider_id=plan.provider_id,
            provider_type=plan.provider_type,
            python=python,
            requirements=tuple(requirements),
            constraints=tuple(plan.worker.constraints),
            sources=sources,
            sdk=self._sdk_fingerprint(),
            probe=json.dumps(
                {
                    "module": module,
                    "provider_type": plan.provider_type,
                    "api": plan.api,
                    "config_class": config_class,
                    "find_spec": plan.spec.from_package,
                    "overrides": {k: v for k, v in plan.worker.overrides.items() if k in ("module", "config_class")},
                },
                sort_keys=True,
            ),
            sandbox=json.dumps(dict(plan.worker.sandbox), sort_keys=True) if plan.worker.sandbox is not None else "",
        )
        if self._lock is not None:
            if isinstance(self._lock, Path):
                self._lock = read_lock(self._lock)
            locked = self._lock.pins_for(plan.provider_id, spec.inputs)
            spec = dataclasses.replace(spec, pins=locked.pins, pin_hashes=tuple(sorted(locked.hashes.items())))
        return spec

    async def check_config(self, plan: ProviderPlan, spec: EnvSpec, env: Env) -> dict[str, Any]:
        """``plan``'s config validated against its config class inside its built ``env`` (``hostel check --deep``):
        ``{"error", "stage", "unknown_keys": [[key, closest field or ""], ...]}``."""
        found = env.metadata.get("provider_spec") or {}
        module = str(found.get("module") or plan.spec.module)
        config_class = plan.worker.overrides.get("config_class") or found.get("config_class") or plan.spec.config_class
        if not config_class:
            return {"error": None, "stage": None, "unknown_keys": []}
        return await self._builder.check_config(spec, env.python, module, str(config_class), plan.worker.config)

    def status(self, spec: EnvSpec) -> EnvStatus:
        """``built`` (current env exists), ``stale`` (only an older env of this provider) or ``missing``."""
        if self._load(self.envs_dir / spec.dirname, spec.key) is not None:
            return "built"
        prefix = f"{slug(spec.provider_id)}-"
        if self.envs_dir.is_dir() and any(
            p.name.startswith(prefix) and (p / METADATA_FILE).exists() for p in self.envs_dir.iterdir()
        ):
            return "stale"
        return "missing"

    @staticmethod
    def read_metadata(path: Path) -> dict[str, Any]:
        """The metadata of the env at ``path``."""
        data: dict[str, Any] = json.loads((path / METADATA_FILE).read_text())
        return data

    async def remove(self, path: Path) -> None:
        """Delete an env under its build lock (never one being built), moving it aside first."""
        async with _file_lock(self.envs_dir / f".{path.name}.lock"):
            trash = self.envs_dir / f".{path.name}.trash-{secrets.token_hex(4)}"
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.envs_dir / f".{path.name}.lock").unlink()

    def unused_local_wheels(self, *, min_age_s: float = 3600.0) -> list[Path]:
        """Kept local-provider wheels (``hostel.envs.localwheels``) that no env lists, and leftovers of killed wheel
        builds, made over ``min_age_s`` ago (younger ones may belong to a build still running)."""
        if not self.local_wheels_dir.is_dir():
            return []
        used = {w for _, meta in iter_envs(self.home) for w in meta.get("local_wheels") or []}
        cutoff = time.time() - min_age_s
        return [
            path
            for path in sorted(self.local_wheels_dir.iterdir())
            if str(path) not in used and path.stat().st_mtime < cutoff
        ]

    def _load(self, path: Path, key: str) -> Env | None:
        try:
            metadata = json.loads((path / METADATA_FILE).read_text())
        except (OSError, ValueError):
            return None
        refuse_untrusted(path, f"the env of provider {metadata.get('provider_id')!r}")
        if metadata.get("format") != METADATA_FORMAT or metadata.get("key") != key:
            return None
        return Env(path=path, key=key, metadata=metadata)

    async def ensure(self, spec: EnvSpec) -> tuple[Env, bool]:
        """The env for ``spec``, building it if needed. Returns ``(env, built_now)``."""
        private_dir(self.home)
        private_dir(self.envs_dir)
        final = self.envs_dir / spec.dirname
        env = self._load(final, spec.key)
        if env is not None:
            touch(final / LAST_USED_FILE)
            return _checked(env), False
        async with _file_lock(self.envs_dir / f".{spec.dirname}.lock"):
            env = self._load(final, spec.key)  # another host may have built it while we waited
            if env is not None:
                return _checked(env), False
            for leftover in self.envs_dir.glob(f".{spec.dirname}.build-*"):
                shutil.rmtree(leftover, ignore_errors=True)  # from a killed build; we hold the lock
            tmp = self.envs_dir / f".{spec.dirname}.build-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                async with self._build_slot():
                    metadata = await self._builder.build(spec, tmp)
                _write_json(tmp / METADATA_FILE, redact_all(metadata))
                touch(tmp / LAST_USED_FILE)
                if final.exists():
                    shutil.rmtree(final)  # an unusable env with the same key (no or bad metadata)
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        logger.info("provider %s: env built at %s", spec.provider_id, final)
        return _checked(Env(path=final, key=spec.key, metadata=metadata)), True


def _checked(env: Env) -> Env:
    """``env``, unless its build found that the provider does not import: then an ``EnvBuildError`` that says why.

    Such an env is kept (rebuilding would fail the same way); changing pip_packages, constraints or
    spec_overrides changes its key and so builds a new one.
    """
    check = env.metadata.get("import_check") or {"ok": True}
    if check.get("ok", True):
        return env
    provider_id = str(env.metadata.get("provider_id"))
    error = str(check.get("error"))
    raise EnvBuildError(
        f"provider {provider_id!r}: its env resolved and installed, but the provider does not work there "
        f"(stage {check.get('stage')}): {error}; {hint(error, env.path)}",
        provider_id=provider_id,
        stage=str(check.get("stage") or "build"),
    )


def dir_size(path: Path) -> int:
    """Bytes used by the files under ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def private_dir(path: Path) -> None:
    """Make ``path`` a directory only this user can enter (0700), or refuse one someone else owns."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if info.st_uid != os.getuid() or stat.S_ISLNK(info.st_mode):
        refuse_untrusted(path, "hostel's cache directory")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours, made before hostel kept it private: others need not see provider code


def refuse_untrusted(path: Path, what: str) -> None:
    """``EnvBuildError`` unless ``path`` is this user's and nobody else may write to it (the ssh rule):
    hostel runs what is in it as provider code."""
    info = path.lstat()
    why = (
        f"owned by uid {info.st_uid}, not by this user ({os.getuid()})"
        if info.st_uid != os.getuid()
        else "a symbolic link"
        if stat.S_ISLNK(info.st_mode)
        else "writable by other users"
        if info.st_mode & 0o022
        else ""
    )
    if why:
        raise EnvBuildError(
            f"refusing {what} at {path}: it is {why}, and hostel would run what it holds as this user. "
            f"Remove it (hostel builds it again) or, if it is yours, fix it: chown $USER and chmod go-w"
        )


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> Any:
    """An exclusive ``flock`` on ``path``, polled so the event loop keeps running while we wait."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def iter_envs(home: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every built env under ``home`` with its metadata."""
    envs_dir = home / "envs"
    if not envs_dir.is_dir():
        return
    for path in sorted(envs_dir.iterdir()):
        try:
            yield path, json.loads((path / METADATA_FILE).read_text())
        except (OSError, ValueError):
            continue
