"""Zygotes: one pre-imported process per provider env that forks its workers (``hostel_sdk.zygote``).

Every worker of a provider, the first included, is a ``fork()`` of an interpreter that has imported grpc,
pydantic, hostel-sdk and (where safe) the provider's module: a restart or a new replica costs no Python start
and no runtime import, and all of them share those pages with the zygote (a first worker spawned beside its
zygote would share none). The worker
is the zygote's child, not the host's: ``ForkedChild`` gives the process launcher the same handle as
``Child`` — pipes the host created and passed over, the exit from the zygote (which reaps it), and from a
pidfd if the zygote died first. A zygote that dies is started again for the next fork; running workers do
not notice. Providers whose module starts threads at import cannot be forked safely: their zygote keeps the
runtime only. ``zygote: false`` on a provider entry (or ``hostel.zygote: false``) spawns workers as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostel._confine import confined_command
from hostel.launch.child import LineRelay, Signals

logger = logging.getLogger(__name__)

_READY_S = 60.0  # how long a zygote may take to import its runtime (a cold venv, a slow disk)
_STATUS_WAIT_S = 1.0  # how long a worker's exit waits for its zygote to say how it ended
_MAX_MESSAGE = 1 << 16


class ZygoteUnavailableError(RuntimeError):
    """The zygote could not fork (it failed to start, died, or its provider's module starts threads)."""


@dataclass(frozen=True)
class ZygoteSpec:
    """What a provider's zygote is made of: its interpreter, its workers' environment, where it runs, and the
    sandbox it starts in (``confine``: ``sandbox`` and ``limits``, from its first line: ``hostel._confine``)."""

    python: Path
    env: Mapping[str, str]
    cwd: str | None
    confine: Mapping[str, Any] | None = None

    def fits(self, other: ZygoteSpec) -> bool:
        """Whether a zygote made for ``other`` can fork workers for this (a worker's own TMPDIR aside)."""
        return (
            self.python == other.python
            and _same(self.env, other.env)
            and self.cwd == other.cwd
            and self.confine == other.confine
        )


class Zygote:
    """One zygote process and its control socket."""

    def __init__(self, spec: ZygoteSpec, module: str | None) -> None:
        self.spec = spec
        self.python = spec.python
        self.module = module
        self.pid: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._socket: socket.socket | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._stderr = LineRelay(lambda line: logger.info("zygote %s: %s", self.python, line), what="stderr")
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def alive(self) -> bool:
        """Whether the zygote process runs."""
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the zygote and wait until it has imported its runtime; ``ZygoteUnavailableError`` if it cannot
        fork safely (its module started threads, which it reports as ``threads N``)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = theirs.fileno()
        args = [str(fd), *([self.module] if self.module else [])]
        command = [str(self.python), "-m", "hostel_sdk.zygote", *args]
        confine = self.spec.confine
        if confine is not None:  # a sandboxed provider's: inside before its venv's .pth files run
            command = confined_command(
                str(self.python), "hostel_sdk.zygote", args, sandbox=confine["sandbox"], limits=confine["limits"],
                failure="sandbox failed: {message}",
            )  # fmt: skip
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(self.spec.env),
                cwd=self.spec.cwd,
                pass_fds=(fd,),
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._process, self.pid = process, process.pid
        assert process.stdout is not None and process.stderr is not None
        self._watchers.append(asyncio.create_task(_relay(process.stderr, self._stderr.feed)))
        try:
            try:
                line = (await asyncio.wait_for(process.stdout.readline(), _READY_S)).decode().strip()
            except TimeoutError:
                line = "timeout"
            if line != "ready":
                raise ZygoteUnavailableError(f"the zygote did not start ({line or 'it exited'})")
        except BaseException:  # cancelled too (the host stops while it warms): nothing is left running
            ours.close()
            await self.stop()
            raise
        ours.setblocking(False)
        self._socket = ours
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._socket is not None
        try:
            while True:
                data = await loop.sock_recv(self._socket, _MAX_MESSAGE)
                if not data:
                    break
                message = json.loads(data)
                if "exited" in message:
                    exited = self._exits.setdefault(message["exited"], loop.create_future())
                    if not exited.done():
                        exited.set_result(int(message["returncode"]))
                else:
                    self._replies.put_nowait(message)
        except (OSError, ValueError):
            pass
        finally:
            self._replies.put_nowait({"error": "the zygote is gone"})

    async def fork(self, env: Mapping[str, str], cwd: str | None, fds: tuple[int, int, int]) -> int:
        """A new worker with ``fds`` as its stdin, stdout and stderr; its pid."""
        async with self._lock:
            if self._socket is None or not self.alive:
                raise ZygoteUnavailableError("the zygote is not running")
            message = json.dumps({"fork": {"env": dict(env), "cwd": cwd}}).encode()
            try:  # a small packet on an idle socket: it is taken at once
                socket.send_fds(self._socket, [message], list(fds))
            except OSError as exc:
                raise ZygoteUnavailableError(f"the zygote is gone ({exc})") from None
            try:
                reply = await self._replies.get()
            except asyncio.CancelledError:
                await self._abandon_fork()
                raise
        if "pid" not in reply:
            raise ZygoteUnavailableError(str(reply.get("error", "no pid")))
        pid = int(reply["pid"])
        self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        return pid

    async def _abandon_fork(self) -> None:
        """The caller of a fork was cancelled while it waited for the pid (the host stops while a provider
        starts), but the zygote forks all the same: take its reply, or the next fork would read it as its own,
        and kill that worker, which nobody would otherwise stop; wait until the zygote has reaped it."""
        try:
            reply = await asyncio.wait_for(self._replies.get(), _STATUS_WAIT_S)
        except TimeoutError:
            return  # it is not answering: it is stopped with the rest, and its fork sees its stdin closed
        if "pid" not in reply:
            return
        pid = int(reply["pid"])
        exited = self.exit_of(pid)
        for kill in (os.kill, os.killpg):  # itself, then its group (it may not have made its own group yet)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
        await asyncio.wait({exited}, timeout=_STATUS_WAIT_S)
        self.forget(pid)

    def exit_of(self, pid: int) -> asyncio.Future[int]:
        """Resolves with the worker's return code once the zygote has reaped it."""
        return self._exits.setdefault(pid, asyncio.get_running_loop().create_future())

    def forget(self, pid: int) -> None:
        """The worker's exit has been taken: nothing more to keep for it."""
        self._exits.pop(pid, None)

    async def stop(self) -> None:
        """Stop the zygote (its workers keep running: they exit when the host closes their stdin)."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        for task in (self._reader, *self._watchers):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._reader, *self._watchers) if t is not None), return_exceptions=True)


async def _relay(stream: asyncio.StreamReader, feed: Callable[[bytes], None]) -> None:
    while chunk := await stream.read(1 << 16):
        feed(chunk)


class _PipeReader(asyncio.Protocol):
    def __init__(self, on_data: Callable[[bytes], None], closed: asyncio.Future[None]) -> None:
        self._on_data = on_data
        self._closed = closed

    def data_received(self, data: bytes) -> None:
        self._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


class ForkedChild(Signals):
    """A worker forked by a zygote, with the interface of ``hostel.launch.child.Child``."""

    def __init__(self, on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None]) -> None:
        self._on = (on_stdout, on_stderr)
        self.pid: int | None = None
        self.exited: asyncio.Future[int] | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._readers: list[asyncio.BaseTransport] = []
        self._closed: list[asyncio.Future[None]] = []
        self._watch: asyncio.Task[None] | None = None

    async def spawn_from(self, zygote: Zygote, env: Mapping[str, str], cwd: str | None) -> None:
        """Have ``zygote`` fork the worker; ``ZygoteUnavailableError`` if it cannot (nothing is left open)."""
        loop = asyncio.get_running_loop()
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            self.pid = pid = await zygote.fork(env, cwd, (stdin_r, stdout_w, stderr_w))
        except BaseException:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            raise
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
        self.exited = loop.create_future()
        self._watch = asyncio.create_task(self._watch_exit(zygote, pid))
        files = [os.fdopen(fd, mode, buffering=0) for fd, mode in ((stdout_r, "rb"), (stderr_r, "rb"), (stdin_w, "wb"))]
        try:
            for file, on_data in zip(files[:2], self._on, strict=True):
                closed: asyncio.Future[None] = loop.create_future()
                transport, _ = await loop.connect_read_pipe(
                    lambda on_data=on_data, closed=closed: _PipeReader(on_data, closed),  # type: ignore[misc]
                    file,
                )
                self._readers.append(transport)
                self._closed.append(closed)
            self._stdin, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, files[2])
        except BaseException:  # cancelled (the host stops while it starts): the worker must not outlive it
            self.signal_process(signal.SIGKILL)  # it may not have made its own group yet
            self.signal_group(signal.SIGKILL)
            self.close()
            for file in files:
                file.close()
            raise

    async def _watch_exit(self, zygote: Zygote, pid: int) -> None:
        """The exit as the zygote reports it; if the zygote died first, as a pidfd sees it (code unknown)."""
        loop = asyncio.get_running_loop()
        reported = zygote.exit_of(pid)
        gone: asyncio.Future[int] = loop.create_future()

        def seen() -> None:
            if not gone.done():
                gone.set_result(0)

        pidfd = None
        try:
            pidfd = os.pidfd_open(pid)
            loop.add_reader(pidfd, seen)
        except (OSError, AttributeError):
            pass  # already gone, or no pidfd here: the zygote's report alone
        try:
            await asyncio.wait({reported, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not reported.done():
                await asyncio.wait({reported}, timeout=_STATUS_WAIT_S)
            code = reported.result() if reported.done() else -signal.SIGKILL  # unknown: its zygote had died
        finally:
            zygote.forget(pid)
            if pidfd is not None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # whatever it forked dies with it, as for a spawned worker
        assert self.exited is not None
        if not self.exited.done():
            self.exited.set_result(code)

    @property
    def returncode(self) -> int | None:
        """The return code once the worker has ended."""
        return self.exited.result() if self.exited is not None and self.exited.done() else None

    def write(self, data: bytes) -> None:
        """Write to the worker's stdin."""
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.write(data)

    def close_stdin(self) -> None:
        """Close the worker's stdin (it sees EOF and exits)."""
        if self._stdin is not None:
            self._stdin.close()

    async def output_closed(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for stdout and stderr to reach end of file."""
        pending = [f for f in self._closed if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        """Release the pipes."""
        for transport in (*self._readers, *([self._stdin] if self._stdin else [])):
            transport.close()


class Zygotes:
    """The zygotes of one host: one per provider (its env and worker environment), started for its first worker.
    When a reload gives a provider another env or environment, its zygote is replaced by one for the new."""

    def __init__(self) -> None:
        self._by_owner: dict[str, Zygote] = {}
        self._unsafe: set[tuple[Path, str]] = set()  # (python, module) that start threads at import
        # One per provider: providers starting together start their zygotes together.
        self._locks: dict[str, asyncio.Lock] = {}
        # Zygotes that could not start, by provider: its workers are spawned without trying again (a hung start
        # would cost each worker start the ready timeout) until its env or environment changes.
        self._broken: dict[str, ZygoteSpec] = {}
        self._closed = False

    def running(self, owner: str, spec: ZygoteSpec) -> Zygote | None:
        """``owner``'s zygote if one is running and ready for ``spec``, else ``None`` (no waiting)."""
        current = self._by_owner.get(owner)
        return current if current is not None and current.spec.fits(spec) and current.alive else None

    def pids(self) -> list[int]:
        """The pids of the zygotes running and ready to fork."""
        return [z.pid for z in self._by_owner.values() if z.alive and z.pid is not None]

    async def get(self, owner: str, spec: ZygoteSpec, module: str | None) -> Zygote:
        """``owner``'s running zygote for this env, started (or replaced) if needed; ``ZygoteUnavailableError``
        if none can run."""
        async with self._locks.setdefault(owner, asyncio.Lock()):
            current = self.running(owner, spec)
            if current is not None:
                return current
            broken = self._broken.get(owner)
            if broken is not None and broken.fits(spec):
                raise ZygoteUnavailableError("its zygote could not start before")
            stale = self._by_owner.pop(owner, None)
            if stale is not None:
                await stale.stop()
            if module and (spec.python, module) in self._unsafe:
                module = None
            zygote = Zygote(spec, module)
            try:
                await (zygote.start() if module else self._start(owner, zygote))
            except ZygoteUnavailableError:
                if not module:
                    raise
                logger.warning(
                    "importing %s starts threads, so a process that imported it cannot fork safely: its workers "
                    "are forked from a zygote that imports the runtime alone (zygote: false turns zygotes off)",
                    module,
                )
                self._unsafe.add((spec.python, module))
                zygote = Zygote(spec, None)
                await self._start(owner, zygote)
            if self._closed:  # the host stopped while this one started: it must not outlive the host
                await zygote.stop()
                raise ZygoteUnavailableError("the host is stopping")
            self._by_owner[owner] = zygote
            logger.debug("zygote for provider %s ready [pid %s]", owner, zygote.pid)
            return zygote

    async def _start(self, owner: str, zygote: Zygote) -> None:
        """Start a zygote of the runtime alone; if even that fails, remember it for ``owner``."""
        try:
            await zygote.start()
        except ZygoteUnavailableError:
            self._broken[owner] = zygote.spec
            raise
        self._broken.pop(owner, None)

    async def close(self) -> None:
        """Stop every zygote (one starting now stops once started)."""
        self._closed = True
        zygotes, self._by_owner = list(self._by_owner.values()), {}
        await asyncio.gather(*(z.stop() for z in zygotes))


def _same(one: Mapping[str, str], other: Mapping[str, str]) -> bool:
    """Whether two worker environments are the same but for each worker's private TMPDIR (which the fork
    request sets in the child)."""
    return {k: v for k, v in one.items() if k != "TMPDIR"} == {k: v for k, v in other.items() if k != "TMPDIR"}


def fork_supported() -> bool:
    """Whether this platform can fork workers from zygotes (Linux, with pidfds and fd passing)."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")
