"""One provider worker process, seen from the host: start it, read its handshake, stop or kill it.

The worker runs ``python -m hostel_sdk.worker`` in the provider's venv. Its spec and config go on stdin
(never argv or the environment); stdin stays open so the worker notices if the host dies. Its stderr is
relayed line by line (bounded: ``hostel.launch.child``) to the ``hostel.provider.<id>`` logger and its last
lines kept for error messages. Its exit is seen as soon as it is reaped, whoever still holds its pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostel import __version__ as hostel_version
from hostel._confine import confined_command, sandbox_policy
from hostel._environ import worker_environ
from hostel.config.plan import ProviderPlan
from hostel.envs import Env
from hostel.envs.commands import SETPRIV as _SETPRIV
from hostel.errors import ProviderStartError
from hostel.launch.base import (
    ExitInfo,
    GrpcConnect,
    LaunchContext,
    WorkerBase,
    WorkerHandle,
    ask_watchdog,
    socket_path,
)
from hostel.launch.child import Child, FirstLine, LineRelay, collect_stacks
from hostel.launch.output import StderrLevels
from hostel.launch.zygote import ForkedChild, Zygotes, ZygoteSpec, ZygoteUnavailableError, fork_supported
from hostel_sdk._handshake import (
    FAILURE_MAGIC,
    LIVENESS_SOCKET,
    PROTOCOL_VERSION,
    STACKS_SIGNAL,
    Handshake,
    HandshakeError,
    StartFailure,
    parse,
)
from hostel_sdk._start import StartRequest

logger = logging.getLogger(__name__)

# After its exit, how long the worker's last output may take to arrive (its pipes may be held elsewhere).
_DRAIN_S = 0.5
# A SIGKILLed process is reaped at once unless the kernel holds it (uninterruptible I/O): wait this long.
KILL_WAIT_S = 5.0


def start_request(
    plan: ProviderPlan,
    *,
    token: str,
    log_level: str,
    max_message_bytes: int,
    grace_s: float,
    env_key: str | None = None,
) -> StartRequest:
    """The start request for a local worker of ``plan`` (docs/protocol.md); launchers derive theirs from it
    with ``dataclasses.replace`` (where to listen, how to reach the host, their identity)."""
    spec = plan.spec
    telemetry = None
    if plan.worker.telemetry is not None:  # the worker's OpenTelemetry resource (docs/observability.md)
        resource = {
            "service.name": f"hostel-provider-{plan.provider_id}",
            "hostel.provider.id": plan.provider_id,
            "hostel.provider.type": spec.provider_type,
            "hostel.api": plan.api,
            "hostel.launcher": plan.worker.launcher,
            "hostel.version": hostel_version,
            **({"hostel.env.key": env_key} if env_key else {}),
        }
        telemetry = {**plan.worker.telemetry, "resource": resource}
    return StartRequest(
        provider_id=plan.provider_id,
        api=plan.api,
        provider_type=spec.provider_type,
        kind=spec.kind,
        module=spec.module,
        config_class=spec.config_class,
        config=dict(plan.worker.config),
        provider_data_validator=spec.provider_data_validator,
        deps=tuple(plan.worker.dependency_apis),
        deps_methods=(
            {api: list(names) for api, names in plan.worker.dependency_methods.items()}
            if plan.worker.dependency_methods is not None
            else None
        ),
        lenient_provider_data=plan.worker.lenient_provider_data,
        storage=plan.worker.storage,
        policy=plan.worker.access_policy,
        expose=tuple(plan.worker.expose),
        token=token,
        host_pid=os.getpid(),
        log_level=log_level,
        max_message_bytes=max_message_bytes,
        grace_s=grace_s,
        retain_freed_bytes=plan.worker.retain_freed_mb * 2**20,
        limits=dict(plan.worker.rlimits),
        telemetry=telemetry,
    )


@dataclass(frozen=True)
class HandshakeProblem:
    """Why a worker's first line is not a usable handshake; ``worker_exits``: it ends by itself (else kill it)."""

    message: str
    stage: str
    worker_exits: bool


def judge_handshake(line: str, mismatch_hint: str) -> Handshake | HandshakeProblem:
    """The handshake in a worker's first stdout line, or what is wrong with it (``mismatch_hint``: what to do
    about another protocol version)."""
    try:
        result = parse(line)
    except HandshakeError as exc:
        return HandshakeProblem(f"bad handshake line: {exc}", "handshake", worker_exits=False)
    if result.protocol != PROTOCOL_VERSION:
        return HandshakeProblem(
            f"the worker speaks hostel protocol {result.protocol}, this host speaks {PROTOCOL_VERSION}; "
            + mismatch_hint,
            "handshake",
            worker_exits=False,
        )
    if isinstance(result, StartFailure):
        return HandshakeProblem(result.message, result.stage, worker_exits=True)
    return result


class WorkerProcess(WorkerBase):
    """A worker child process: ``start``, ``stop``, ``kill``, ``wait``.

    It serves on a Unix socket in a 0700 directory of its own and refuses every RPC that lacks its own
    ``server_token``: no other process, another worker included, can call it or shut it down.
    """

    tls: dict[str, str] | None = None

    def __init__(
        self,
        plan: ProviderPlan,
        python: Path,
        socket_path: Path,
        *,
        log_level: str = "WARNING",
        max_message_bytes: int,
        grace_s: float = 5.0,
        stderr_lines: int = 200,
        host_socket: Path | None = None,
        command: Sequence[str] | None = None,
        die_with_host: bool = False,
        env_key: str | None = None,
        zygotes: Zygotes | None = None,
    ) -> None:
        """``command`` replaces ``python -m hostel_sdk.worker`` (tests run a fake worker this way).

        ``die_with_host``: arm the parent-death signal for a ``command`` that cannot arm it itself.
        ``zygotes``: fork the worker from its env's zygote (``hostel.launch.zygote``), else spawn it.
        """
        self.plan = plan
        self.python = python
        self.socket_path = socket_path
        self._log_level = log_level
        self._max_message_bytes = max_message_bytes
        self._grace_s = grace_s
        self._env_key = env_key
        self._host_socket = host_socket
        self._command = list(command) if command else [str(python), "-m", "hostel_sdk.worker"]
        # A sandboxed worker is confined before its venv's first byte runs (hostel._confine): spawned so, or forked
        # from its provider's zygote, which was started so (and the fork confines itself further to its own).
        self._confined = plan.worker.sandbox is not None and not command
        if self._confined:
            self._command = confined_command(
                str(python), "hostel_sdk.worker", [], sandbox=self._sandbox() or {}, limits=plan.worker.rlimits,
                failure=f"{FAILURE_MAGIC}|{PROTOCOL_VERSION}|config|{{message}}",
            )  # fmt: skip
        if die_with_host:
            self._command[:0] = _SETPRIV
        self.token = ""  # given at start(): a standby learns its token only when it is used
        self.server_token: str | None = secrets.token_urlsafe(32)
        self.provider_logger = logging.getLogger(f"hostel.provider.{plan.provider_id}")
        self._stderr_levels = StderrLevels()
        self._err = LineRelay(self._log_stderr, tail_lines=stderr_lines, what="stderr")
        self._out = LineRelay(self._log_stdout, tail_lines=1, what="stdout")
        self._stdout: FirstLine | None = None
        self._child: Child | ForkedChild | None = None
        self._zygotes = zygotes
        self._forked = False
        self._env: dict[str, str] = {}  # the environment it was spawned (or forked) with
        self._watcher: asyncio.Task[None] | None = None
        self._exit: asyncio.Future[ExitInfo] | None = None
        self.kill_reason: str | None = None  # set when hostel itself kills the worker (hang, memory limit)

    @property
    def pid(self) -> int | None:
        """The worker's pid once started."""
        return self._child.pid if self._child else None

    @property
    def exit_info(self) -> ExitInfo | None:
        """How the worker ended, once it has."""
        if self._exit is not None and self._exit.done():
            return self._exit.result()
        return None

    def stderr_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the worker wrote to stderr."""
        return self._err.tail_text(lines)

    def _request(self) -> StartRequest:
        request = start_request(
            self.plan,
            token=self.token,
            log_level=self._log_level,
            max_message_bytes=self._max_message_bytes,
            grace_s=self._grace_s,
            env_key=self._env_key,
        )
        return dataclasses.replace(
            request,
            socket_path=str(self.socket_path),
            host_socket=str(self._host_socket) if self._host_socket else None,
            server_token=self.server_token,
            # Spawned confined: nothing more to do. Forked: within its zygote's sandbox, narrowed to its own.
            sandbox=None if self._confined and not self._forked else self._forked_sandbox(),
            # A forked worker's parent is its zygote, which may die before it; it watches the host's pipe.
            host_pid=None if self._forked else request.host_pid,
            parent_death=not self._forked,
        )

    def _sandbox(self, *, own_root: bool = True, zygote: bool = False) -> dict[str, Any] | None:
        """The plan's sandbox, with the worker's own directory (socket, private tmp) its to write (a zygote: its
        provider's directory, where its forks' are), and a private root built in it (``own_root``: a fork lives
        in its zygote's)."""
        if self.plan.worker.sandbox is None:
            return None
        own = self.socket_path.parent.parent if zygote else self.socket_path.parent
        return sandbox_policy(
            self.plan.worker.sandbox,
            write=[*self.plan.worker.sandbox["write"], str(own)],
            root=(own / ("zygote-root" if zygote else "root")) if own_root else None,
            sockets=[str(self._host_socket)] if self._host_socket else [],
        )

    def _forked_sandbox(self) -> dict[str, Any] | None:
        """The sandbox a worker applies to itself: spawned, with a private root of its own; forked, none (it lives
        in its zygote's), but the zygote's private ``/dev/shm`` to write (multiprocessing's semaphores)."""
        if not self._forked:
            return self._sandbox()
        policy = self._sandbox(own_root=False)
        zygote = self._sandbox(zygote=True)
        if policy is not None and zygote is not None and "root" in zygote:
            policy["private_shm"] = True
        return policy

    def _zygote_spec(self, env: Mapping[str, str]) -> ZygoteSpec:
        """The zygote this worker may be forked from (a sandboxed provider's starts inside its sandbox)."""
        sandbox = self._sandbox(zygote=True)
        confine = None if sandbox is None else {"sandbox": sandbox, "limits": dict(self.plan.worker.rlimits)}
        return ZygoteSpec(self.python, env, self._cwd(), confine)

    async def spawn(self) -> None:
        """Start the process. It imports its runtime, then waits for its start request (see ``start``).

        A worker spawned ahead of need (a standby) turns a restart into provider import + factory only.
        """
        self.socket_path.parent.parent.mkdir(mode=0o700, exist_ok=True)
        self.socket_path.parent.mkdir(mode=0o700, exist_ok=True)
        env = self._env = self._environment()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._exit = asyncio.get_running_loop().create_future()
        self._stdout = FirstLine(self._out.feed)
        child: Child | ForkedChild | None = await self._fork(env) if self._zygotes is not None else None
        if child is None:
            child = Child(self._stdout.feed, self._err.feed)
            try:
                await child.spawn(self._command, env=env, cwd=self._cwd())
            except OSError as exc:
                raise ProviderStartError(
                    f"cannot run {self._command[0]}: {exc}", provider_id=self.plan.provider_id, stage="import"
                ) from None
        self._child = child
        logger.debug("provider %s: spawned worker [pid %s]", self.plan.provider_id, child.pid)
        self._watcher = asyncio.create_task(self._watch_exit(child))

    def _zygote_module(self) -> str | None:
        # Only where the entry opts in (zygote: preload): what a module makes at import (a random.Random(), numpy's
        # global generator, ids) would otherwise be the same in every worker forked after it. A sandboxed
        # provider's zygote is inside its sandbox from its first line, so that import runs there too.
        return self.plan.spec.module if self.plan.worker.zygote_preload else None

    async def _fork(self, env: dict[str, str]) -> ForkedChild | None:
        """The worker forked from its env's zygote (started first if none runs), or ``None`` (spawn it) if no
        zygote can fork it. The first worker too: forked, it shares the zygote's pages (grpc, pydantic,
        hostel-sdk) with every later one, where a spawned one would share none."""
        assert self._zygotes is not None and self._stdout is not None
        try:
            zygote = await self._zygotes.get(self.plan.provider_id, self._zygote_spec(env), self._zygote_module())
            child = ForkedChild(self._stdout.feed, self._err.feed)
            await child.spawn_from(zygote, env, self._cwd())
        except (ZygoteUnavailableError, OSError) as exc:
            logger.warning("provider %s: no zygote (%s); spawning its worker", self.plan.provider_id, exc)
            return None
        self._forked = True
        return child

    def _cwd(self) -> str | None:
        """Where the process runs: the host's working directory (a provider's relative paths mean that)."""
        return None

    def _environment(self) -> dict[str, str]:
        """The worker's environment: minimal, plus its provider's ``env`` (hostel._environ); a private TMPDIR."""
        tmpdir = self.socket_path.parent / "tmp"
        tmpdir.mkdir(mode=0o700, exist_ok=True)
        return worker_environ(os.environ, env=self.plan.worker.env, tmpdir=tmpdir)

    async def start(self, timeout: float, *, token: str = "") -> Handshake:
        """Send the start request (spawning first if needed) with the callback ``token`` and wait for the
        handshake.

        Raises ``ProviderStartError`` and leaves nothing running.
        """
        self.token = token
        if self._child is None:
            await self.spawn()
        child, stdout, exited = self._child, self._stdout, self._exit
        assert child is not None and stdout is not None and exited is not None
        handshake = stdout.line
        child.write(self._request().to_json() + b"\n")
        try:
            either: set[asyncio.Future[Any]] = {handshake, exited}
            await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            await self.kill()
            raise
        if not handshake.done() and not exited.done():
            await self.kill()
            raise self._start_error(f"no handshake within start_timeout_s={timeout:g}s", "timeout")
        line = handshake.result() if handshake.done() else b""
        if not line:
            info = await self.wait()
            raise self._start_error(f"the worker {info} before its handshake", "handshake")
        result = judge_handshake(
            line.decode(errors="replace"),
            "rebuild the provider's env (hostel build) so its hostel-sdk matches the host",
        )
        if isinstance(result, HandshakeProblem):
            await (self.wait() if result.worker_exits else self.kill())
            raise self._start_error(result.message, result.stage)
        logger.info("started provider %s [pid %s]", self.plan.provider_id, child.pid)
        return result

    def _log_stderr(self, line: str) -> None:
        self.provider_logger.log(self._stderr_levels.level(line), "%s", line)

    def _log_stdout(self, line: str) -> None:
        self.provider_logger.info("%s", line)

    async def _watch_exit(self, child: Child | ForkedChild) -> None:
        assert child.exited is not None and self._exit is not None
        returncode = await child.exited
        # Let the last output arrive, so error messages carry the worker's last words.
        await child.output_closed(_DRAIN_S)
        self._err.close()
        self._out.close()
        info = await self._ended(returncode)
        if self._stdout is not None:
            self._stdout.ended()
        if not self._exit.done():
            self._exit.set_result(info)

    async def _ended(self, returncode: int) -> ExitInfo:
        """How the process's return code reads as a worker's exit (launchers that wrap the worker differ)."""
        return ExitInfo.from_returncode(returncode)

    async def wait(self) -> ExitInfo:
        """Wait for the worker to exit."""
        assert self._exit is not None, "worker not started"
        return await asyncio.shield(self._exit)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker's process group (the worker and anything it spawned)."""
        if self._child is not None and self.exit_info is None:
            self._child.signal_group(sig)

    async def dump_stacks(self) -> str:
        """Every thread's stack in the worker (it writes them to stderr on ``STACKS_SIGNAL``), or ``""``."""
        if self._child is None or self.exit_info is not None:
            return ""
        mark = self._err.lines
        self._child.signal_process(STACKS_SIGNAL)
        return await collect_stacks(self._err, mark)

    async def loop_blocked_s(self, timeout: float) -> float | None:
        """Ask the worker's watchdog thread (``hostel_sdk._watchdog``) on its socket beside the worker's."""
        if self._child is None or self.exit_info is not None:
            return None
        return await ask_watchdog(self.socket_path.parent / LIVENESS_SOCKET, timeout)

    def rss_bytes(self) -> int | None:
        """The worker's resident memory, from /proc (Linux), or ``None``."""
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/statm") as statm:
                return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    async def kill(self) -> ExitInfo | None:
        """SIGKILL the worker and reap it (waiting at most ``KILL_WAIT_S``)."""
        if self._child is None:
            return None
        self.signal(signal.SIGKILL)
        try:
            return await asyncio.wait_for(self.wait(), KILL_WAIT_S)
        except TimeoutError:
            logger.error(
                "provider %s [pid %s] still not reaped %gs after SIGKILL (stuck in the kernel?); giving up on it",
                self.plan.provider_id, self.pid, KILL_WAIT_S,
            )  # fmt: skip
            return None

    def _running(self) -> bool:
        return self._child is not None

    async def close(self) -> None:
        """Close stdin (a live worker sees EOF and exits) and, once it has exited, release its pipes."""
        if self._child is not None:
            self._child.close_stdin()
            if self._child.returncode is not None:
                self._child.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        shutil.rmtree(self.socket_path.parent, ignore_errors=True)


class ProcessLauncher(GrpcConnect):
    """Workers as child processes of the host, in the provider's venv."""

    uses_env = True

    def __init__(self, context: LaunchContext) -> None:
        self._context = context
        self.max_message_bytes = context.settings.max_message_mb * 2**20
        self.zygotes = Zygotes() if fork_supported() else None  # one per provider env, started on use

    def new_worker(self, plan: ProviderPlan, env: Env | None, generation: int) -> WorkerHandle:
        """A ``WorkerProcess`` on a Unix socket in the host's private directory."""
        context = self._context
        return WorkerProcess(
            plan,
            env.python if env is not None else Path(sys.executable),
            socket_path(context.socket_dir, plan, generation),
            log_level=context.log_level,
            max_message_bytes=context.settings.max_message_mb * 2**20,
            grace_s=context.settings.stop_grace_s,
            host_socket=context.callbacks.socket_path if context.callbacks else None,
            env_key=env.key if env is not None else None,
            zygotes=self.zygotes if plan.worker.zygote and env is not None else None,
        )

    async def close(self) -> None:
        """Stop the zygotes (the workers stop on their own)."""
        if self.zygotes is not None:
            await self.zygotes.close()
