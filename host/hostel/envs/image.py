"""``hostel image build``: a container image for one provider, for the container launcher.

The image is a base image with Python 3 (``python:3.11-slim`` by default) plus a venv at ``/opt/hostel``
holding this host's hostel-sdk, the provider's pip packages (local directories copied into the build
context) and its constraints. ``PATH`` starts with that venv, so ``python -m hostel_sdk.worker`` — the
container launcher's default command — runs the provider.

From a bundle (``--bundle``, ``hostel.envs.bundle``), the venv gets exactly the provider's locked pins instead,
from the bundle's wheels, in pip's hash-checking mode, and the build has no network at all.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hostel.config.plan import ProviderPlan
from hostel.envs import commands
from hostel.envs.bundle import Bundle
from hostel.envs.hashes import hashed_requirements
from hostel.envs.sdkwheel import sdk_wheel
from hostel.envs.spec import EnvSpec, is_path, local_dir
from hostel.errors import EnvBuildError

DEFAULT_BASE = "python:3.11-slim"
VENV = "/opt/hostel"
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv", "build", "dist", "*.egg-info")


@dataclass(frozen=True)
class BuildContext:
    """A directory ready for ``<engine> build``: the Containerfile and what it copies."""

    path: Path
    containerfile: str


def write_context(
    plan: ProviderPlan, directory: Path, *, base: str, sdk_cache: Path, locked: Locked | None = None
) -> BuildContext:
    """Write the Containerfile and copy the sdk wheel and local packages (or, ``locked``, the bundle's wheels of
    the provider's pins) into ``directory``."""
    (directory / "wheels").mkdir(parents=True, exist_ok=True)
    wheel = sdk_wheel(sdk_cache)
    shutil.copyfile(wheel, directory / "wheels" / wheel.name)
    pip = [f"{VENV}/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    if locked is not None:
        installs = _locked_installs(locked, directory, pip, wheel.name)
    else:
        if plan.worker.constraints:
            (directory / "constraints.txt").write_text("\n".join(plan.worker.constraints) + "\n")
            pip += ["--constraint", "/tmp/hostel/constraints.txt"]
        installs = [[*pip, *_requirements(plan, directory, wheel.name)]]
    labels = {
        "hostel.provider_type": plan.provider_type,
        "hostel.module": plan.spec.module,
        "hostel.api": plan.api,
    }
    lines = [
        f"FROM {base}",
        "COPY . /tmp/hostel/",
        f"RUN {json.dumps(['python3', '-m', 'venv', VENV])}",
        *(f"RUN {json.dumps(command)}" for command in installs),
        f"RUN {json.dumps(['rm', '-rf', '/tmp/hostel'])}",
        f"ENV PATH={VENV}/bin:$PATH",
        "USER 65534:65534",  # nobody: the container launcher runs it as the host's user, others need not root
        *(f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()),
        "",
    ]
    text = "\n".join(lines)
    (directory / "Containerfile").write_text(text)
    return BuildContext(directory, text)


def _requirements(plan: ProviderPlan, directory: Path, sdk: str) -> list[str]:
    """The provider's pip packages, local directories copied into the context."""
    requirements = [f"/tmp/hostel/wheels/{sdk}"]
    for i, requirement in enumerate(plan.worker.pip_packages):
        if is_path(requirement):
            source = Path(local_dir(requirement))
            shutil.copytree(source, directory / "pkgs" / f"{i}-{source.name}", ignore=_IGNORED)
            requirements.append(f"/tmp/hostel/pkgs/{i}-{source.name}")
        else:
            requirements.append(requirement)
    return requirements


@dataclass(frozen=True)
class Locked:
    """A provider's locked env, to install from a bundle: its spec (pins and their hashes) and the bundle."""

    spec: EnvSpec
    bundle: Bundle


def _locked_installs(locked: Locked, directory: Path, pip: list[str], sdk: str) -> list[list[str]]:
    """The pins from the bundle's wheels in hash-checking mode, then the local packages' wheels and the sdk."""
    provider_id = locked.spec.provider_id
    for wheel in locked.bundle.wheels(provider_id):
        shutil.copyfile(wheel, directory / "wheels" / wheel.name)
    hashes = {pin: list(found) for pin, found in locked.spec.pin_hashes}
    for pin, found in locked.bundle.extra_hashes(provider_id).items():
        hashes[pin] = [*hashes.get(pin, []), *found]
    (directory / "requirements.txt").write_text(hashed_requirements(sorted(hashes.items())))
    local = [
        f"/tmp/hostel/wheels/{Path(rel).name}" for rel in locked.bundle.provider(provider_id)["local_wheels"].values()
    ]
    offline = ["--no-index", "--find-links", "/tmp/hostel/wheels", "--no-deps"]
    return [
        [*pip, *offline, "--require-hashes", "-r", "/tmp/hostel/requirements.txt"],
        [*pip, *offline, f"/tmp/hostel/wheels/{sdk}", *local],
    ]


async def build_image(
    plan: ProviderPlan,
    *,
    tag: str,
    engine: str,
    base: str = DEFAULT_BASE,
    sdk_cache: Path,
    engine_args: tuple[str, ...] = (),
    timeout: float = 1800,
    locked: Locked | None = None,
) -> str:
    """Build the provider's image as ``tag``; return the engine's output. ``EnvBuildError`` if it fails.

    The build uses the host's network (``--network host``): pip inside it reaches the registry the host does.
    From a bundle (``locked``) it has none (``--network none``).
    """
    with tempfile.TemporaryDirectory(prefix="hostel-image-") as tmp:
        context = write_context(plan, Path(tmp), base=base, sdk_cache=sdk_cache, locked=locked)
        network = "none" if locked is not None else "host"
        command = [engine, "build", "--network", network, "--tag", tag, "--file", str(context.path / "Containerfile")]
        command += [*engine_args, str(context.path)]
        done = await commands.run(command, timeout=timeout)
    if done.returncode != 0:
        raise EnvBuildError(
            f"building image {tag!r} for provider {plan.provider_id!r} failed",
            provider_id=plan.provider_id,
            command=command,
            stderr_tail=commands.tail(done.stderr + done.stdout),
        )
    return done.stdout
