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
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from hostel._environ import installer_environ
from hostel._redact import redact_all
from hostel.config.plan import ProviderPlan
from hostel.envs import process as _process
from hostel.envs.interpreters import InterpreterCache, InterpreterNotFoundError
from hostel.envs.localwheels import build_command, cached_wheel, distribution_sources, publish, wheel_dir
from hostel.envs.lock import Lockfile, read_lock
from hostel.envs.sdkwheel import sdk_fingerprint, sdk_wheel
from hostel.envs.spec import METADATA_FORMAT, EnvSpec, is_path, local_dir, normalise, provider_package, slug, tree_hash
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
    """Builds and reuses provider envs under ``<home>/envs``."""

    def __init__(
        self,
        home: Path | None = None,
        *,
        installer: InstallerName = "auto",
        build_timeout_s: float = 600.0,
        lock: Lockfile | Path | None = None,
        pass_env: Sequence[str] = (),
    ) -> None:
        """``lock``: build exactly the pins of a ``hostel.lock`` (``--locked``), or the path of one, read when
        the first env is described. ``pass_env``: environment variables installers and probes get besides the
        minimal ones and the installer's own."""
        self.pass_env = tuple(pass_env)
        self.home = (home or default_home()).expanduser()
        self._lock = lock
        self.envs_dir = self.home / "envs"
        self.local_wheels_dir = self.home / "wheels" / "local"
        self.installer = installer
        self.build_timeout_s = build_timeout_s
        self._interpreters = InterpreterCache(self.home / "interpreters.json")
        self._sdk: str | None = None

    def _sdk_fingerprint(self) -> str:
        if self._sdk is None:
            self._sdk = sdk_fingerprint()
        return self._sdk

    async def describe(self, plan: ProviderPlan) -> EnvSpec:
        """Work out what determines ``plan``'s env (no installer runs). With a lock, check it and pin."""
        try:
            python = await self._interpreters.find(plan.python)
        except InterpreterNotFoundError as exc:
            raise EnvBuildError(str(exc), provider_id=plan.provider_id) from None
        requirements = [normalise(r) for r in plan.pip_packages]
        package = provider_package(plan.spec.module, requirements)
        if package is not None:
            logger.info(
                "provider %s: installing %s (provides module %s in the host env)",
                plan.provider_id,
                package,
                plan.spec.module,
            )
            requirements.append(normalise(package))
        sources = tuple((r, tree_hash(Path(r))) for r in requirements if is_path(r) and Path(r).is_dir())
        spec = EnvSpec(
            provider_id=plan.provider_id,
            provider_type=plan.provider_type,
            python=python,
            requirements=tuple(requirements),
            constraints=tuple(plan.constraints),
            sources=sources,
            sdk=self._sdk_fingerprint(),
            probe=json.dumps(
                {
                    "module": plan.spec.module,
                    "provider_type": plan.provider_type,
                    "api": plan.api,
                    "config_class": plan.spec.config_class,
                    "find_spec": plan.spec.from_package,
                    "overrides": {k: v for k, v in plan.overrides.items() if k in ("module", "config_class")},
                },
                sort_keys=True,
            ),
        )
        if self._lock is not None:
            if isinstance(self._lock, Path):
                self._lock = read_lock(self._lock)
            locked = self._lock.pins_for(plan.provider_id, spec.inputs)
            spec = dataclasses.replace(spec, pins=locked.pins, pin_hashes=tuple(sorted(locked.hashes.items())))
        return spec

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
            _touch(final / LAST_USED_FILE)
            return _checked(env), False
        async with _file_lock(self.envs_dir / f".{spec.dirname}.lock"):
            env = self._load(final, spec.key)  # another host may have built it while we waited
            if env is not None:
                return _checked(env), False
            for leftover in self.envs_dir.glob(f".{spec.dirname}.build-*"):
                shutil.rmtree(leftover, ignore_errors=True)  # from a killed build; we hold the lock
            tmp = self.envs_dir / f".{spec.dirname}.build-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                metadata = await self._build(spec, tmp)
                _write_json(tmp / METADATA_FILE, redact_all(metadata))
                _touch(tmp / LAST_USED_FILE)
                if final.exists():
                    shutil.rmtree(final)  # an unusable env with the same key (no or bad metadata)
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        logger.info("provider %s: env built at %s", spec.provider_id, final)
        return _checked(Env(path=final, key=spec.key, metadata=metadata)), True

    def _choose_installer(self) -> tuple[str, str | None]:
        if self.installer in ("auto", "uv"):
            try:
                import uv

                return "uv", uv.find_uv_bin()
            except (ImportError, FileNotFoundError):
                if self.installer == "uv":
                    raise EnvBuildError("the uv installer was requested but is not installed; pip install uv") from None
        return "pip", None

    async def _build(self, spec: EnvSpec, tmp: Path) -> dict[str, Any]:
        started = time.monotonic()
        installer, uv_bin = self._choose_installer()
        wheel = sdk_wheel(self.home / "wheels", spec.sdk)
        tmp.mkdir(parents=True)
        # Locked: exactly the pinned set, no resolution (hostel-sdk is always the host's own).
        requirements = [*(spec.pins or spec.requirements), str(wheel)]
        hashes = dict(spec.pin_hashes)
        req_file = tmp / "hostel-requirements.txt"
        req_file.write_text("\n".join(r for r in requirements if not local_dir(r) and r not in hashes) + "\n")
        python = tmp / "bin" / "python"
        if installer == "uv":
            assert uv_bin is not None
            create = [
                uv_bin,
                "venv",
                "--quiet",
                "--relocatable",
                "--python",
                spec.python.path,
                str(tmp),
                "--allow-existing",
            ]
            install_base = [uv_bin, "pip", "install", "--python", str(python)]
        else:
            create = [spec.python.path, "-m", "venv", "--without-pip", str(tmp)]
            install_base = [sys.executable, "-m", "pip", "--python", str(python), "install"]
        if spec.constraints and not spec.pins:
            constraints_file = tmp / "hostel-constraints.txt"
            constraints_file.write_text("\n".join(spec.constraints) + "\n")
            install_base += ["-c", str(constraints_file)]
        await self._run(spec, create, requirements)
        # Local directories are installed as wheels built from them (see hostel.envs.localwheels).
        wheels = await self._local_wheels(spec, installer, uv_bin, python, [local_dir(r) for r in requirements])
        if hashes:  # the lock's pins, in hash-checking mode: different bytes fail, naming the distribution
            hashed = tmp / "hostel-hashed-requirements.txt"
            lines = (f"{pin} {' '.join(f'--hash={h}' for h in found)}\n" for pin, found in hashes.items())
            hashed.write_text("".join(lines))
            await self._run(spec, [*install_base, "--require-hashes", "--no-deps", "-r", str(hashed)], list(hashes))
            hashed.unlink()
        install = [*install_base, "-r", str(req_file), *map(str, wheels), *(["--no-deps"] if spec.pins else [])]
        await self._run(spec, install, requirements)
        req_file.unlink()  # it may hold index credentials; the metadata keeps the requirements, redacted
        found_spec, import_check = await self._check(spec, python, install_base, requirements)
        resolved = installed_distributions(tmp, distribution_sources(wheels))
        return {
            "format": METADATA_FORMAT,
            "key": spec.key,
            "inputs": spec.inputs,
            "provider_id": spec.provider_id,
            "provider_type": spec.provider_type,
            "spec": asdict(spec) | {"python": asdict(spec.python)},
            "installer": installer,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 3),
            "resolved": sorted(resolved),
            "provider_spec": found_spec,
            "import_check": import_check,
            "local_wheels": sorted(str(w.parent) for w in wheels),
        }

    async def _local_wheels(
        self, spec: EnvSpec, installer: str, uv_bin: str | None, python: Path, sources: list[str]
    ) -> dict[Path, str]:
        """A wheel for each local source directory (wheel -> directory): kept from an earlier build of the
        same content for the same interpreter, else built now and kept."""
        hashes = dict(spec.sources)
        wheels = {}
        for source in filter(None, sources):
            digest = hashes.get(source) or tree_hash(Path(source))
            # By Python version, as the env key is: the same interpreter reached by another path (python,
            # python3) must find the same wheel.
            final = wheel_dir(self.local_wheels_dir, source, digest, spec.python.version)
            wheel = cached_wheel(final)
            if wheel is not None:
                _touch(final)  # in use again: `envs prune` spares wheels touched within the hour
            else:
                building = final.with_name(f".{final.name}.build-{secrets.token_hex(4)}")
                building.mkdir(parents=True)
                try:
                    await self._run(spec, build_command(installer, uv_bin, str(python), source, building), [source])
                    wheel = publish(building, final)
                finally:
                    shutil.rmtree(building, ignore_errors=True)
                if wheel is None:
                    raise EnvBuildError(
                        f"building {source} for provider {spec.provider_id!r} gave no single wheel; "
                        "check that the directory is one Python project (pyproject.toml or setup.py)",
                        provider_id=spec.provider_id,
                        requirements=[source],
                    )
            wheels[wheel] = source
        return wheels

    async def _check(
        self, spec: EnvSpec, python: Path, install_base: list[str], requirements: list[str]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Find a package provider's spec (installing its own pip_packages), then check the provider imports."""
        if not spec.probe:
            return None, None
        request = json.loads(spec.probe)
        found_spec = None
        if request["find_spec"]:
            found = await self._probe(spec, python, {**request, "check_import": False})
            if found["error"]:
                raise EnvBuildError(
                    f"provider {spec.provider_id!r}: reading its spec failed: {found['error']}; "
                    + _hint(found["error"]),
                    provider_id=spec.provider_id,
                    requirements=requirements,
                )
            found_spec = found["spec"]
            extras = [r for r in found_spec.get("pip_packages") or [] if r not in spec.requirements]
            if extras and not spec.pins:
                await self._run(spec, [*install_base, *extras], [*requirements, *extras])
        checked = await self._probe(spec, python, request)
        return found_spec, {"ok": checked["error"] is None, "stage": checked["stage"], "error": checked["error"]}

    async def _probe(self, spec: EnvSpec, python: Path, request: dict[str, Any]) -> dict[str, Any]:
        command = [str(python), "-m", "hostel_sdk._probe", json.dumps(request)]
        done = await self._run(spec, command, [], what="checking")
        try:
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise EnvBuildError(
                f"checking the env of provider {spec.provider_id!r} failed: the probe gave no answer",
                provider_id=spec.provider_id,
                command=command,
                stderr_tail=_process.tail(done.stderr),
            ) from None
        return result

    async def _run(
        self, spec: EnvSpec, command: list[str], requirements: Sequence[str], *, what: str = "building"
    ) -> _process.Completed:
        try:
            environ = installer_environ(os.environ, pass_env=self.pass_env)
            done = await _process.run(command, timeout=self.build_timeout_s, env=environ)
        except TimeoutError:
            raise EnvBuildError(
                f"{what} the env of provider {spec.provider_id!r} took longer than "
                f"build_timeout_s={self.build_timeout_s:g}",
                provider_id=spec.provider_id,
                requirements=requirements,
                command=command,
            ) from None
        except OSError as exc:
            raise EnvBuildError(
                f"cannot run the installer for provider {spec.provider_id!r}: {exc}",
                provider_id=spec.provider_id,
                command=command,
            ) from None
        if done.returncode != 0:
            todo = (
                "the index served bytes that differ from the hashes hostel.lock recorded (the installer names the "
                "distribution below); if that change is expected, run `hostel lock` again"
                if "--require-hashes" in command
                else "fix its pip_packages or add constraints, then build again"
            )
            raise EnvBuildError(
                f"{what} the env of provider {spec.provider_id!r} failed (exit code {done.returncode}); {todo}",
                provider_id=spec.provider_id,
                requirements=requirements,
                command=command,
                stderr_tail=_process.tail(done.stderr or done.stdout),
            )
        return done


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
        f"(stage {check.get('stage')}): {error}; {_hint(error)}",
        provider_id=provider_id,
    )


def _hint(error: str) -> str:
    missing = re.search(r"No module named '([^']+)'", error)
    if missing:
        return (
            f"add the package that provides {missing.group(1)!r} to the provider's pip_packages, "
            "or pin a version that declares it with constraints"
        )
    return (
        "pin working versions with constraints (e.g. 'llama-stack==0.2.22'), "
        "or correct the published spec with spec_overrides (module, config_class)"
    )


def installed_distributions(env_path: Path, built_from: Mapping[str, str] | None = None) -> list[str]:
    """Every distribution in a venv as a requirement that reinstalls exactly it: ``name==version``, or
    ``name @ file:///path`` for one installed from a local directory (by the installer, or as a wheel
    built from the directory ``built_from`` names for it). Read from metadata, no subprocess.
    hostel-sdk is left out: every env gets the host's own."""
    site = [str(p) for p in env_path.glob("lib/python*/site-packages")]
    found = set()
    for dist in importlib.metadata.distributions(path=site):
        name = canonicalize_name(dist.metadata["Name"])
        if name == "hostel-sdk":
            continue
        if built_from and name in built_from:
            found.add(f"{name} @ {Path(built_from[name]).as_uri()}")
            continue
        direct = dist.read_text("direct_url.json")
        info = json.loads(direct) if direct else {}
        if "dir_info" in info and str(info.get("url", "")).startswith("file://"):
            found.add(f"{name} @ {info['url']}")
        else:
            found.add(f"{name}=={dist.version}")
    return sorted(found)


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()


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
