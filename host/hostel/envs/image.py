"""``hostel image build``: a container image for one provider, for the container launcher.

The image is a base image with Python 3 (``python:3.11-slim`` by default) plus a venv at ``/opt/hostel``
holding this host's hostel-sdk, the provider's pip packages (local directories copied into the build
context) and its constraints. ``PATH`` starts with that venv, so ``python -m hostel_sdk.worker`` — the
container launcher's default command — runs the provider.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hostel.config.plan import ProviderPlan
from hostel.envs import commands
from hostel.envs.sdkwheel import sdk_wheel
from hostel.envs.spec import is_path, local_dir
from hostel.errors import EnvBuildError

DEFAULT_BASE = "python:3.11-slim"
VENV = "/opt/hostel"
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv", "build", "dist", "*.egg-info")


@dataclass(frozen=True)
class BuildContext:
    """A directory ready for ``<engine> build``: the Containerfile and what it copies."""

    path: Path
    containerfile: str


def write_context(plan: ProviderPlan, directory: Path, *, base: str, sdk_cache: Path) -> BuildContext:
    """Write the Containerfile and copy the sdk wheel and local packages into ``directory``."""
    (directory / "wheels").mkdir(parents=True, exist_ok=True)
    wheel = sdk_wheel(sdk_cache)
    shutil.copyfile(wheel, directory / "wheels" / wheel.name)
    requirements = [f"/tmp/hostel/wheels/{wheel.name}"]
    for i, requirement in enumerate(plan.worker.pip_packages):
        if is_path(requirement):
            source = Path(local_dir(requirement))
            shutil.copytree(source, directory / "pkgs" / f"{i}-{source.name}", ignore=_IGNORED)
            requirements.append(f"/tmp/hostel/pkgs/{i}-{source.name}")
        else:
            requirements.append(requirement)
    pip = [f"{VENV}/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    if plan.worker.constraints:
        (directory / "constraints.txt").write_text("\n".join(plan.worker.constraints) + "\n")
        pip += ["--constraint", "/tmp/hostel/constraints.txt"]
    labels = {
        "hostel.provider_type": plan.provider_type,
        "hostel.module": plan.spec.module,
        "hostel.api": plan.api,
    }
    lines = [
        f"FROM {base}",
        "COPY . /tmp/hostel/",
        f"RUN {json.dumps(['python3', '-m', 'venv', VENV])}",
        f"RUN {json.dumps([*pip, *requirements])}",
        f"RUN {json.dumps(['rm', '-rf', '/tmp/hostel'])}",
        f"ENV PATH={VENV}/bin:$PATH",
        "USER 65534:65534",  # nobody: the container launcher runs it as the host's user, others need not root
        *(f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()),
        "",
    ]
    text = "\n".join(lines)
    (directory / "Containerfile").write_text(text)
    return BuildContext(directory, text)


async def build_image(
    plan: ProviderPlan,
    *,
    tag: str,
    engine: str,
    base: str = DEFAULT_BASE,
    sdk_cache: Path,
    engine_args: tuple[str, ...] = (),
    timeout: float = 1800,
) -> str:
    """Build the provider's image as ``tag``; return the engine's output. ``EnvBuildError`` if it fails.

    The build uses the host's network (``--network host``): pip inside it reaches the registry the host does.
    """
    with tempfile.TemporaryDirectory(prefix="hostel-image-") as tmp:
        context = write_context(plan, Path(tmp), base=base, sdk_cache=sdk_cache)
        command = [engine, "build", "--network", "host", "--tag", tag, "--file", str(context.path / "Containerfile")]
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
