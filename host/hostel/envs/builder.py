"""Building one provider env, inside the transaction ``EnvManager.ensure`` holds: make the venv, build local
provider directories into wheels, install (in hash-checking mode for a locked build), read the spec a
``module:`` package declares and check the provider imports. Every command runs through one wrapper that
logs it, bounds it by ``build_timeout_s`` and raises ``EnvBuildError`` with the installer's words.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.metadata
import json
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from hostel._confine import confined_command, sandbox_policy
from hostel._environ import installer_environ, worker_environ
from hostel.envs import commands
from hostel.envs.bundle import Bundle
from hostel.envs.hashes import hashed_requirements
from hostel.envs.localwheels import build_command, cached_wheel, distribution_sources, publish, wheel_dir
from hostel.envs.sdkwheel import sdk_wheel
from hostel.envs.spec import METADATA_FORMAT, EnvSpec, asks_instrumentations, local_dir, tree_hash
from hostel.errors import EnvBuildError

logger = logging.getLogger(__name__)


class EnvBuilder:
    """Builds env directories; knows nothing of where finished envs live or who uses them."""

    def __init__(
        self,
        home: Path,
        *,
        installer: str,
        build_timeout_s: float,
        pass_env: Sequence[str],
        bundle: Bundle | None = None,
    ) -> None:
        """``bundle``: install from it alone, the installer offline (``hostel build --locked --bundle``)."""
        self.home = home
        self.bundle = bundle
        self.local_wheels_dir = home / "wheels" / "local"
        self.installer = installer
        self.build_timeout_s = build_timeout_s
        self.pass_env = tuple(pass_env)

    def _choose_installer(self) -> tuple[str, str | None]:
        if self.installer in ("auto", "uv"):
            try:
                import uv

                return "uv", uv.find_uv_bin()
            except (ImportError, FileNotFoundError):
                if self.installer == "uv":
                    raise EnvBuildError("the uv installer was requested but is not installed; pip install uv") from None
        return "pip", None

    async def build(self, spec: EnvSpec, tmp: Path) -> dict[str, Any]:
        """Make the venv at ``tmp`` for ``spec``, install and check it; its metadata (the caller writes it)."""
        started = time.monotonic()
        installer, uv_bin = self._choose_installer()
        wheel = sdk_wheel(self.home / "wheels", spec.sdk)
        tmp.mkdir(parents=True)
        # Locked: exactly the pinned set, no resolution (hostel-sdk is always the host's own).
        requirements = [*(spec.pins or spec.requirements), str(wheel)]
        hashes = {pin: list(found) for pin, found in spec.pin_hashes}
        if self.bundle is not None:
            for pin, found in self.bundle.extra_hashes(spec.provider_id).items():
                hashes[pin] = [*hashes.get(pin, []), *found]
            self.bundle.place_local_wheels(spec.provider_id, self.local_wheels_dir)
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
        if self.bundle is not None:  # nothing from an index: the bundle's wheels, the lock's hashes
            install_base += ["--no-index", "--find-links", str(self.bundle.wheelhouse)]
            install_base += ["--offline"] if installer == "uv" else []
        if spec.constraints and not spec.pins:
            constraints_file = tmp / "hostel-constraints.txt"
            constraints_file.write_text("\n".join(spec.constraints) + "\n")
            install_base += ["-c", str(constraints_file)]
        await self._run(spec, create, requirements)
        # Local directories are installed as wheels built from them (see hostel.envs.localwheels).
        wheels = await self._local_wheels(spec, installer, uv_bin, python, [local_dir(r) for r in requirements])
        if hashes:  # the lock's pins, in hash-checking mode: different bytes fail, naming the distribution
            hashed = tmp / "hostel-hashed-requirements.txt"
            hashed.write_text(hashed_requirements(hashes.items()))
            await self._run(spec, [*install_base, "--require-hashes", "--no-deps", "-r", str(hashed)], list(hashes))
            hashed.unlink()
        install = [*install_base, "-r", str(req_file), *map(str, wheels), *(["--no-deps"] if spec.pins else [])]
        await self._run(spec, install, requirements)
        req_file.unlink()  # it may hold index credentials; the metadata keeps the requirements, redacted
        if not spec.pins and asks_instrumentations(spec.requirements):
            await self._instrumentations(spec, python, install_base, requirements)
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
                touch(final)  # in use again: `envs prune` spares wheels touched within the hour
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

    async def _instrumentations(
        self, spec: EnvSpec, python: Path, install_base: list[str], requirements: list[str]
    ) -> None:
        """``hostel.telemetry.instrument``: the OpenTelemetry instrumentations for the libraries installed here, as
        ``opentelemetry-bootstrap`` lists them (a locked env has them among its pins already)."""
        listing = [
            str(python),
            "-c",
            "from opentelemetry.instrumentation.bootstrap import run; run()",
            "-a",
            "requirements",
        ]
        done = await self._run(spec, listing, requirements, what="listing the OpenTelemetry instrumentations of")
        # Unpinned: bootstrap pins its own version, which an index need not carry for every instrumentation;
        # the installer resolves one version that fits them all and the provider's own pins.
        listed = (line.strip() for line in done.stdout.splitlines() if line.strip() and not line.startswith("#"))
        wanted = [line.split("==", 1)[0] for line in listed]
        if wanted:
            await self._run(spec, [*install_base, *wanted], [*requirements, *wanted])

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
                    + hint(found["error"]),
                    provider_id=spec.provider_id,
                    requirements=requirements,
                )
            found_spec = found["spec"]
            extras = [r for r in found_spec.get("pip_packages") or [] if r not in spec.requirements]
            if extras and not spec.pins:
                await self._run(spec, [*install_base, *extras], [*requirements, *extras])
        checked = await self._probe(spec, python, request)
        return found_spec, {"ok": checked["error"] is None, "stage": checked["stage"], "error": checked["error"]}

    async def check_config(
        self, spec: EnvSpec, python: Path, module: str, config_class: str, config: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Validate a provider's ``config`` against its ``config_class`` inside its built env (``hostel check
        --deep``): the probe's answer, with ``unknown_keys``. The config (it may hold secrets) goes in a 0600
        file, never on a command line; a sandboxed provider's probe may read that file and nothing more."""
        with tempfile.TemporaryDirectory(prefix="hostel-config-") as tmp:
            path = Path(tmp) / "config.json"
            path.touch(mode=0o600)
            path.write_text(json.dumps(dict(config)))
            request = {
                **json.loads(spec.probe), "module": module, "config_class": config_class, "find_spec": False,
                "config_file": str(path),
            }  # fmt: skip
            return await self._probe(spec, python, request, read=[str(path)])

    async def _probe(
        self, spec: EnvSpec, python: Path, request: dict[str, Any], *, read: Sequence[str] = ()
    ) -> dict[str, Any]:
        command = [str(python), "-m", "hostel_sdk._probe", json.dumps(request)]
        if not spec.sandbox:
            done = await self._run(spec, command, [], what="checking")
        else:  # the provider's import-time code runs as its worker would: confined, in a minimal environment
            with tempfile.TemporaryDirectory(prefix="hostel-probe-") as tmp:
                # It may write bytecode into the env being built, and tmp; nothing its provider's entry lists.
                sandbox = json.loads(spec.sandbox)
                sandbox["read"] = [*(sandbox.get("read") or ()), *read]
                confined = sandbox_policy(sandbox, write=[str(python.parent.parent), tmp], root=Path(tmp) / "root")
                command = confined_command(
                    str(python), "hostel_sdk._probe", command[3:], sandbox=confined, limits={},
                    failure='{"spec": null, "found": [], "stage": "config", "error": {message}}',
                )  # fmt: skip
                environ = worker_environ(os.environ, env={}, tmpdir=Path(tmp))
                done = await self._run(spec, command, [], what="checking", environ=environ)
        try:
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise EnvBuildError(
                f"checking the env of provider {spec.provider_id!r} failed: the probe gave no answer",
                provider_id=spec.provider_id,
                command=command,
                stderr_tail=commands.tail(done.stderr),
            ) from None
        return result

    async def _run(
        self,
        spec: EnvSpec,
        command: list[str],
        requirements: Sequence[str],
        *,
        what: str = "building",
        environ: Mapping[str, str] | None = None,
    ) -> commands.Completed:
        try:
            if environ is None:
                environ = installer_environ(os.environ, pass_env=self.pass_env)
            done = await commands.run(command, timeout=self.build_timeout_s, env=environ)
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
            if self.bundle is not None:
                todo = (
                    "the bundle lacks a distribution this build installs, or holds other bytes for it (the installer "
                    "names it below): pack the bundle again from this config's lock, `hostel pack CONFIG -o FILE`"
                )
            elif "--require-hashes" in command:
                todo = (
                    "the index served bytes that differ from the hashes hostel.lock recorded (the installer names "
                    "the distribution below); if that change is expected, run `hostel lock` again"
                )
            else:
                todo = "fix its pip_packages or add constraints, then build again"
            raise EnvBuildError(
                f"{what} the env of provider {spec.provider_id!r} failed (exit code {done.returncode}); {todo}",
                provider_id=spec.provider_id,
                requirements=requirements,
                command=command,
                stderr_tail=commands.tail(done.stderr or done.stdout),
            )
        return done


def hint(error: str, env_path: Path | None = None) -> str:
    """What to do about a provider that does not import in its env (``env_path``: where to look for near misses)."""
    missing = re.search(r"No module named '([^']+)'", error)
    if missing:
        close = module_near_miss(missing.group(1), env_path) if env_path is not None else None
        if close is not None:
            return f"did you mean {close!r}? (its env has that module); fix the spec's module"
        return (
            f"add the package that provides {missing.group(1)!r} to the provider's pip_packages, "
            "or pin a version that declares it with constraints"
        )
    return (
        "pin working versions with constraints (e.g. 'llama-stack==0.2.22'), "
        "or correct the published spec with spec_overrides (module, config_class)"
    )


def top_level_modules(env_path: Path) -> set[str]:
    """The importable top-level names in a venv's site-packages (packages, modules, extensions), read from the
    directory, no subprocess."""
    names = set()
    for site in env_path.glob("lib/python*/site-packages"):
        for entry in site.iterdir():
            name = entry.name
            if entry.is_dir() and name.isidentifier():
                names.add(name)
            elif name.endswith(".py") or ".cpython-" in name or name.endswith(".so"):
                names.add(name.split(".", 1)[0])
    return names


def module_near_miss(module: str, env_path: Path) -> str | None:
    """The name ``module`` probably meant, if its top level is not in the env at ``env_path`` and one close to it
    is (``hostel_testprv.x`` -> ``hostel_testprov.x``); ``None`` otherwise."""
    top, _, rest = module.partition(".")
    known = top_level_modules(env_path)
    if top in known:
        return None
    close = difflib.get_close_matches(top, sorted(known), n=1, cutoff=0.75)
    return f"{close[0]}.{rest}" if close and rest else close[0] if close else None


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


def touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.touch()
