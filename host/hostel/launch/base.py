"""The launcher seam: where a provider's worker runs. A launcher makes worker handles; the supervisor drives them.

Three launchers: ``process`` (a child process in the provider's venv, the default), ``container`` (the
provider's image under podman or docker) and ``ray`` (a process started by a Ray actor, possibly on another
machine). Whatever the launcher, the worker speaks the same wire, sends the same handshake, and its exit is
reported and restarted the same way.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from hostel.config import HostelSettings
from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.errors import HostelError, ProviderStartError, describe_exit
from hostel.transport.channel import Channel, GrpcChannel
from hostel_sdk._handshake import Handshake

if TYPE_CHECKING:
    from hostel.transport.callbacks import CallbackServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExitInfo:
    """How a worker process ended."""

    exit_code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, returncode: int) -> ExitInfo:
        """asyncio reports death by signal N as returncode -N."""
        return cls(None, -returncode) if returncode < 0 else cls(returncode, None)

    def __str__(self) -> str:
        return describe_exit(self.exit_code, self.signal)


class WorkerHandle(Protocol):
    """One worker, wherever it runs: started once, waited on, stopped or killed."""

    token: str  # the callback token, given at ``start`` ("" before, and for a host without a callback service)
    kill_reason: str | None  # why hostel killed it (hang, memory), if it did
    server_token: str | None  # what the host must send to the worker's server (workers on TCP), if anything
    tls: dict[str, str] | None  # mutual TLS to the worker (PEM ``cert``, ``key``, ``ca``), if configured
    # While it starts: what it waits for that may never come (a Ray node with its resources), so calls are
    # refused at once, saying so, instead of waiting for it.
    waiting_for: str | None

    @property
    def pid(self) -> int | None:
        """The pid to show (the local process, or the remote worker's), once started."""

    @property
    def exit_info(self) -> ExitInfo | None:
        """How the worker ended, once it has."""

    async def spawn(self) -> None:
        """Get the worker's runtime going ahead of ``start`` (a standby); may do nothing."""

    async def start(self, timeout: float, *, token: str = "") -> Handshake:
        """Start the worker with its callback ``token`` and return its handshake; raise ``ProviderStartError``
        leaving nothing running."""

    async def wait(self) -> ExitInfo:
        """Wait for the worker to end."""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker without waiting."""

    def kill_for(self, reason: str) -> None:
        """Kill the worker because of ``reason``, reported with its crash."""

    def rss_bytes(self) -> int | None:
        """Its resident memory, if the host can see it (else the launcher enforces memory limits itself)."""

    async def dump_stacks(self) -> str:
        """Every thread's stack in the worker (asked before a hung worker is killed), or ``""``."""

    async def loop_blocked_s(self, timeout: float) -> float | None:
        """How long the worker's event loop has been blocked, as its watchdog thread answers beside the loop
        (0 while it runs), or ``None`` if nothing answered within ``timeout`` (or the worker cannot be asked)."""

    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines the worker wrote to stderr."""

    async def kill(self) -> ExitInfo | None:
        """Kill the worker and wait for it."""

    async def terminate(self, grace_s: float) -> ExitInfo | None:
        """Ask the worker to stop, kill it after ``grace_s``, and release it."""

    async def close(self) -> None:
        """Release what the handle holds, after the worker ended."""


class WorkerBase(abc.ABC):
    """What every ``WorkerHandle`` does the same way: kill for a reason, SIGTERM then SIGKILL, start errors."""

    plan: ProviderPlan
    kill_reason: str | None
    waiting_for: str | None = None

    @property
    @abc.abstractmethod
    def pid(self) -> int | None:
        """The worker's pid, once known."""

    @property
    @abc.abstractmethod
    def exit_info(self) -> ExitInfo | None:
        """How the worker ended, once it has."""

    @abc.abstractmethod
    def _running(self) -> bool:
        """Whether there is anything to stop (the process, the actor)."""

    @abc.abstractmethod
    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker without waiting."""

    @abc.abstractmethod
    async def wait(self) -> ExitInfo:
        """Wait for the worker to end."""

    @abc.abstractmethod
    async def kill(self) -> ExitInfo | None:
        """Kill the worker and wait for it (bounded)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what the handle holds."""

    @abc.abstractmethod
    def stderr_tail(self, lines: int = 40) -> str:
        """The last lines the worker wrote to stderr."""

    async def loop_blocked_s(self, timeout: float) -> float | None:
        """Not askable here (a worker on TCP): only the gRPC probe judges it."""
        return None

    def kill_for(self, reason: str) -> None:
        """SIGKILL the worker because of ``reason``; its crash is then reported with that reason."""
        if self.exit_info is None and self.kill_reason is None:
            self.kill_reason = reason
            logger.error("provider %s [pid %s] %s; killing it", self.plan.provider_id, self.pid, reason)
            self.signal(signal.SIGKILL)

    async def terminate(self, grace_s: float) -> ExitInfo | None:
        """SIGTERM, then SIGKILL after ``grace_s``; then release the handle."""
        if not self._running():
            return None
        if self.exit_info is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.wait(), grace_s)
            except TimeoutError:
                logger.warning(
                    "provider %s [pid %s] ignored SIGTERM for %.1fs; killing", self.plan.provider_id, self.pid, grace_s
                )
                await self.kill()
        await self.close()
        return self.exit_info

    def _start_error(self, message: str, stage: str) -> ProviderStartError:
        return ProviderStartError(
            message, provider_id=self.plan.provider_id, stage=stage, stderr_tail=self.stderr_tail(), pid=self.pid
        )


@dataclass(frozen=True)
class LaunchContext:
    """What every launcher needs from the host."""

    settings: HostelSettings
    socket_dir: Path
    log_level: str
    callbacks: CallbackServer | None
    base_dir: Path  # relative paths in the settings (TLS files) resolve against it


Explain = Callable[[HostelError], Awaitable[HostelError]]


class WorkerLauncher(Protocol):
    """Makes worker handles for providers that use it, and connects to them once they shook hands."""

    uses_env: bool  # whether the provider's venv is built on this machine first

    def new_worker(self, plan: ProviderPlan, env: Env | None, generation: int) -> WorkerHandle:
        """A handle for the next worker of ``plan`` (not started yet)."""

    def connect(self, worker: WorkerHandle, handshake: Handshake, *, provider_id: str, explain: Explain) -> Channel:
        """The channel to a started worker; ``explain`` may turn a transport failure into a better error."""

    async def close(self) -> None:
        """Release what the launcher holds (connections, clusters) once every worker is stopped."""


class GrpcConnect:
    """``WorkerLauncher.connect`` for workers that speak hostel.v1.Worker over gRPC (every launcher's)."""

    max_message_bytes: int

    def connect(self, worker: WorkerHandle, handshake: Handshake, *, provider_id: str, explain: Explain) -> Channel:
        """A ``GrpcChannel`` to the worker's address, with its server token and TLS identity."""
        return GrpcChannel(
            provider_id,
            handshake.target,
            max_message_bytes=self.max_message_bytes,
            explain=explain,
            token=worker.server_token,
            tls=worker.tls,
        )


def socket_path(socket_dir: Path, plan: ProviderPlan, generation: int) -> Path:
    """The worker's socket, in a 0700 directory of its own (made at spawn) inside its provider's (which a
    sandboxed provider's zygote may see, and no other provider's): a short path (Unix socket paths are limited
    to ~108 bytes), unique per provider and generation."""
    return provider_dir(socket_dir, plan) / f"{generation}-{plan.replica}" / "w.sock"


def provider_dir(socket_dir: Path, plan: ProviderPlan) -> Path:
    """The directory of one provider's worker directories."""
    return socket_dir / f"p{abs(hash(plan.provider_id)) % 10**8}"


async def ask_watchdog(path: Path, timeout: float) -> float | None:
    """The seconds a worker's event loop has been blocked, as its watchdog thread answers on ``path``
    (``hostel_sdk._watchdog``), or ``None`` if it answered nothing within ``timeout``: a stopped worker's
    socket still accepts the connection, but nothing in it writes the line."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(path))
            line = await reader.readline()
        return float(line) if line.strip() else None
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()
