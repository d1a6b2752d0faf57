"""The container launcher: a provider's worker runs inside its ``container_image`` under podman or docker.

The engine's ``run -i`` client is the host's child process: the worker's spec and config go to it on stdin,
its handshake comes back on stdout, its stderr is relayed, and its exit code is the container's. So start,
crash detection, restart and stop work exactly as for a local worker. The host's private socket directory is
bind-mounted at the same path, so the worker serves on a Unix socket there and reaches the callback socket.
Signals go through the engine (``kill --signal``): signalling the client alone would leave the container.
If the host dies, the client dies with it (parent-death signal), the container's stdin closes and the worker
exits; ``--rm`` removes the container after every exit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal as signals
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hostel.config import ContainerSettings
from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.envs.commands import run
from hostel.errors import ProviderStartError
from hostel.launch.base import ExitInfo, GrpcConnect, LaunchContext, WorkerHandle, socket_path
from hostel.launch.process import WorkerProcess
from hostel_sdk._start import StartRequest

logger = logging.getLogger(__name__)

# The engine's own failures (no such image, bad flag) exit with these, before any worker code ran.
_ENGINE_ERRORS = {125: "the container engine failed", 126: "the command cannot run", 127: "the command was not found"}


def find_engine(settings: ContainerSettings) -> str:
    """The engine executable: ``engine`` if set, else podman, else docker; ``FileNotFoundError`` naming both."""
    names = ("podman", "docker") if settings.engine == "auto" else (settings.engine,)
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        f"no container engine: {' or '.join(names)} is not on PATH; install one, "
        "or set hostel.container.engine (or run the provider with launcher: process)"
    )


def run_command(
    engine: str, plan: ProviderPlan, settings: ContainerSettings, *, name: str, mounts: Sequence[str]
) -> list[str]:
    """The ``<engine> run`` command line for one worker (public so that it can be shown and tested).

    ``mounts``: what it may see of the host, each at the same path: its own socket directory and the host's
    callback socket, never another worker's."""
    assert plan.worker.container_image, "the plan checked that a container provider has an image"
    command = [
        engine, "run", "-i", "--rm", "--name", name,
        "--label", f"hostel.provider={plan.provider_id}", "--label", f"hostel.host_pid={os.getpid()}",
        *(["--network", settings.network] if settings.network else []),
        # Hardened: no capabilities, no privilege gain, bounded processes, a read-only root but for /tmp, and
        # the host's own user (whose private socket directory it must use), never more.
        "--cap-drop=ALL", "--security-opt=no-new-privileges",
        f"--pids-limit={plan.worker.rlimits.get('processes', 1024)}",
        "--read-only", "--tmpfs=/tmp", *_user(engine),
        *(arg for mount in mounts for arg in ("--volume", f"{mount}:{mount}")),
        "--env", "PYTHONUNBUFFERED=1",
        # Names only: their values come from the engine client's environment, never from its command line.
        *(arg for name in sorted({name for name, _ in plan.worker.env}) for arg in ("--env", name)),
    ]  # fmt: skip
    if plan.worker.memory_mb:
        command += ["--memory", f"{plan.worker.memory_mb}m"]
    if plan.worker.cpus:
        command += ["--cpus", f"{plan.worker.cpus:g}"]
    return [*command, *settings.run_args, plan.worker.container_image, settings.python, "-m", "hostel_sdk.worker"]


def _user(engine: str) -> list[str]:
    """Run as the host's uid and gid; rootless podman maps them into the container's user namespace."""
    user = [f"--user={os.getuid()}:{os.getgid()}"]
    rootless_podman = os.getuid() != 0 and os.path.basename(engine).startswith("podman")
    return ["--userns=keep-id", *user] if rootless_podman else user


class ContainerWorker(WorkerProcess):
    """A worker in a container: a ``WorkerProcess`` whose process is the engine's ``run -i`` client."""

    def __init__(self, plan: ProviderPlan, engine: str, context: LaunchContext, generation: int) -> None:
        settings = context.settings
        self.engine = engine
        self.name = f"hostel-{plan.provider_id}-{os.getpid()}-{generation}-{plan.replica}"
        socket = socket_path(context.socket_dir, plan, generation)
        host_socket = context.callbacks.socket_path if context.callbacks else None
        mounts = [str(socket.parent), *([str(host_socket)] if host_socket else [])]
        command = run_command(engine, plan, settings.container, name=self.name, mounts=mounts)
        super().__init__(
            plan,
            Path(engine),  # no local interpreter: the image's runs the worker
            socket,
            log_level=context.log_level,
            max_message_bytes=settings.max_message_mb * 2**20,
            grace_s=settings.stop_grace_s,
            host_socket=context.callbacks.socket_path if context.callbacks else None,
            command=command,
            die_with_host=True,
        )

    def _cwd(self) -> str:
        """The worker's own directory: what the engine leaves in its working directory (conmon writes a file
        named ``oom`` there when the kernel kills the container) goes with the worker."""
        return str(self.socket_path.parent)

    def _environment(self) -> dict[str, str]:
        """The engine client's: the host's (it needs its own configuration); the container gets only the
        provider's ``env`` names (``--env NAME``), with the values set here."""
        return {**os.environ, **dict(self.plan.worker.env)}

    def _request(self) -> StartRequest:
        # The worker's parent inside the container is not the host: it watches its stdin instead.
        return dataclasses.replace(super()._request(), host_pid=None)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the container's worker, through the engine (without waiting)."""
        if self.exit_info is not None or self.pid is None:
            return
        subprocess.Popen(
            [self.engine, "kill", "--signal", str(int(sig)), self.name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def rss_bytes(self) -> int | None:
        """Not watched by the host: ``limits.memory_mb`` becomes the engine's ``--memory``."""
        return None

    async def _ended(self, returncode: int) -> ExitInfo:
        if returncode in _ENGINE_ERRORS:
            self._err.note(f"[hostel] {self.engine} run exited {returncode}: {_ENGINE_ERRORS[returncode]}")
        # The engine reports a container killed by signal N as 128 + N.
        info = (
            ExitInfo(None, returncode - 128) if 128 < returncode <= 128 + 64 else ExitInfo.from_returncode(returncode)
        )
        if info.signal == signals.SIGKILL and self.plan.worker.memory_mb and self.kill_reason is None:
            # The container is gone (--rm) before its OOM flag could be read: say what is nearly always so.
            self.kill_reason = (
                f"most likely exceeded its memory limit of {self.plan.worker.memory_mb} MB "
                "(limits.memory_mb, the engine's --memory)"
            )
        return info

    async def close(self) -> None:
        """Release the pipes; remove the container if it outlived its client (``--rm`` removes the rest)."""
        await super().close()
        if self.pid is not None and self.exit_info is None:
            try:
                await run([self.engine, "rm", "--force", self.name], timeout=30)
            except (OSError, TimeoutError) as exc:
                logger.warning("could not remove container %s: %s", self.name, exc)


class ContainerLauncher(GrpcConnect):
    """Runs workers in containers; the engine is found once, on first use."""

    uses_env = False

    def __init__(self, context: LaunchContext) -> None:
        self._context = context
        self.max_message_bytes = context.settings.max_message_mb * 2**20
        self._engine: str | None = None

    def new_worker(self, plan: ProviderPlan, env: Env | None, generation: int) -> WorkerHandle:
        """A ``ContainerWorker`` for the plan's image."""
        if self._engine is None:
            try:
                self._engine = find_engine(self._context.settings.container)
            except FileNotFoundError as exc:
                raise ProviderStartError(str(exc), provider_id=plan.provider_id, stage="import") from None
        return ContainerWorker(plan, self._engine, self._context, generation)

    async def close(self) -> None:
        """Nothing to release: each container is removed with its worker."""
