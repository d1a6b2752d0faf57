"""A child process whose exit is seen whatever it does with its pipes, and whose output is relayed bounded.

``asyncio.subprocess.Process.wait()`` resolves only once every pipe has closed, so a worker that is
killed while a forked grandchild still holds its stderr, or while nobody reads a pipe it blocks on,
never looks dead. Here the exit comes from the event loop's child watcher (``process_exited``), and
output arrives through ``pipe_data_received`` into a ``LineRelay`` that never stops reading: lines are
cut at a length limit, escaped if they are not printable UTF-8, and dropped (and counted) past a rate.

Only the standard library: the Ray actor on every node uses this module too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Mapping, Sequence

# A line longer than this is cut, with a marker saying how much was cut.
MAX_LINE_BYTES = 16 * 1024
# Relayed output per child: bytes per second, and the burst allowed above it (a line costs at least
# _MIN_LINE_COST). Lines past the budget are dropped and counted, never waited for.
RATE_BYTES_S = 256 * 1024
BURST_BYTES = 1024 * 1024
_MIN_LINE_COST = 128
# How often a flood's dropped lines are reported while it lasts.
_DROP_REPORT_S = 1.0

# C0 controls (but tab) and DEL, shown escaped: a provider must not drive the host's terminal.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0A, 0x20), 0x7F)}


def printable(raw: bytes) -> str:
    """``raw`` as text: invalid UTF-8 and control characters escaped (``\\xNN``), a trailing CR removed."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", "backslashreplace").translate(_ESCAPES)


class LineRelay:
    """Splits output into lines, keeps the last ones, and hands them to ``sink`` within a rate budget."""

    def __init__(self, sink: Callable[[str], None], *, tail_lines: int = 200, what: str = "output") -> None:
        self._sink = sink
        self._what = what
        self._partial = bytearray()
        self._cut = 0  # bytes cut from the line in progress
        self.tail: collections.deque[bytes] = collections.deque(maxlen=tail_lines)
        self.lines = 0  # lines seen, relayed or not
        self._tokens = float(BURST_BYTES)
        self._refilled = time.monotonic()
        self.dropped = 0  # lines dropped since the last report
        self._report: asyncio.TimerHandle | None = None

    def feed(self, data: bytes) -> None:
        """Take a chunk of output; complete lines are kept and relayed."""
        parts = data.split(b"\n")
        if len(parts) == 1:
            self._extend_partial(data)
            return
        first = self._finish_line(parts[0])
        self._extend_partial(parts[-1])
        self._take([first, *parts[1:-1]], bounded=1)

    def close(self) -> None:
        """The stream ended: relay the unfinished last line and any drop report."""
        if self._partial or self._cut:
            self._take([self._finish_line(b"")], bounded=1)
        self._flush_drops()

    def note(self, text: str) -> None:
        """Add a line of hostel's own to the tail and the sink (not rate-limited)."""
        raw = text.encode()
        self.tail.append(raw)
        self._sink(text)

    def tail_text(self, lines: int = 40) -> str:
        """The last ``lines`` lines, as printable text."""
        kept = list(self.tail)[-lines:] if lines else []
        return "\n".join(printable(line) for line in kept)

    def since(self, mark: int) -> list[str]:
        """The lines seen after ``lines`` was ``mark`` (as many as the tail still holds)."""
        new = min(self.lines - mark, len(self.tail))
        return [printable(line) for line in list(self.tail)[len(self.tail) - new :]] if new > 0 else []

    def _bounded(self, line: bytes) -> bytes:
        if len(line) <= MAX_LINE_BYTES:
            return line
        return line[:MAX_LINE_BYTES] + f" [hostel: {len(line) - MAX_LINE_BYTES} more bytes cut]".encode()

    def _extend_partial(self, data: bytes) -> None:
        room = MAX_LINE_BYTES - len(self._partial)
        if len(data) <= room:
            self._partial += data
        else:
            self._partial += data[: max(room, 0)]
            self._cut += len(data) - max(room, 0)

    def _finish_line(self, data: bytes) -> bytes:
        self._extend_partial(data)
        line = bytes(self._partial)
        if self._cut:
            line += f" [hostel: {self._cut} more bytes cut]".encode()
        self._partial.clear()
        self._cut = 0
        return line

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(BURST_BYTES), self._tokens + (now - self._refilled) * RATE_BYTES_S)
        self._refilled = now

    def _take(self, lines: list[bytes], *, bounded: int) -> None:
        """Keep and relay ``lines``, of which the first ``bounded`` are already cut to length."""
        self._refill()
        for i, raw in enumerate(lines):
            line = raw if i < bounded else self._bounded(raw)
            cost = max(len(line), _MIN_LINE_COST)
            if self._tokens < cost:
                # Over budget: the rest of the chunk is dropped at once (a flood must cost the host little),
                # but the tail keeps its newest lines for error messages.
                rest = lines[i:]
                self.lines += len(rest)
                self.tail.extend(line if r is raw else self._bounded(r) for r in rest[-(self.tail.maxlen or 0) :])
                self._drop(len(rest))
                return
            self._tokens -= cost
            self.lines += 1
            self.tail.append(line)
            self._flush_drops()
            self._sink(printable(line))

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._report is None:
            with contextlib.suppress(RuntimeError):  # no running loop: reported at the next line or at close
                self._report = asyncio.get_running_loop().call_later(_DROP_REPORT_S, self._flush_drops)

    def _flush_drops(self) -> None:
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self.dropped:
            count, self.dropped = self.dropped, 0
            self._sink(f"[hostel: {count} lines of {self._what} dropped: more than {RATE_BYTES_S >> 10} KiB/s]")


class FirstLine:
    """A worker's stdout: its first line (the handshake) resolves ``line``; what follows goes to ``rest``."""

    def __init__(self, rest: Callable[[bytes], None], *, limit: int = 64 * 1024) -> None:
        self.line: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._rest = rest
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Take a chunk of stdout."""
        if self.line.done():
            self._rest(data)
            return
        line, newline, rest = data.partition(b"\n")
        self._buffer += line
        if newline or len(self._buffer) > self._limit:  # a first line this long is no handshake
            self.line.set_result(bytes(self._buffer[: self._limit]) or b" ")
            self._buffer.clear()
            if rest:
                self._rest(rest)

    def ended(self) -> None:
        """The worker is gone: no first line will come (``line`` resolves to ``b""``)."""
        if not self.line.done():
            self.line.set_result(b"")


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, child: Child) -> None:
        self._child = child

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._child._received(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._child._pipe_closed(fd)

    def process_exited(self) -> None:
        self._child._exited()


class Signals:
    """Signals to a process (``pid``) and its group, while it lives (``returncode`` is ``None``)."""

    pid: int | None

    @property
    def returncode(self) -> int | None:
        """The return code once the process has ended."""
        raise NotImplementedError

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's process group, while the child lives."""
        if self.pid is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def signal_process(self, sig: int) -> None:
        """Send ``sig`` to the child alone, while it lives."""
        if self.pid is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)


class Child(Signals):
    """A child process in a session of its own, with stdin, and stdout/stderr handed to callbacks.

    ``exited`` resolves with the return code (``-N`` for signal N) as soon as the child is reaped, however
    its pipes are held. Whatever is left of its process group is then killed, so nothing it forked
    outlives it.
    """

    def __init__(self, on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None]) -> None:
        self._on = {1: on_stdout, 2: on_stderr}
        self._transport: asyncio.SubprocessTransport | None = None
        self.pid: int | None = None
        self.exited: asyncio.Future[int] | None = None
        self._closed: dict[int, asyncio.Future[None]] = {}

    async def spawn(
        self, command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        """Start ``command`` (in ``cwd``, default the current directory); ``OSError`` if it cannot be run."""
        loop = asyncio.get_running_loop()
        self.exited = loop.create_future()
        self._closed = {1: loop.create_future(), 2: loop.create_future()}
        transport, _ = await loop.subprocess_exec(
            lambda: _Protocol(self),
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own process group: signals reach what it forks; Ctrl-C does not reach it
        )
        self._transport = transport
        self.pid = transport.get_pid()

    @property
    def returncode(self) -> int | None:
        """The return code once the child has been reaped."""
        exited = self.exited
        return exited.result() if exited is not None and exited.done() else None

    def write(self, data: bytes) -> None:
        """Write to the child's stdin (buffered by the loop; a closed stdin is ignored)."""
        pipe = self._transport.get_pipe_transport(0) if self._transport else None
        if pipe is not None and not pipe.is_closing():
            pipe.write(data)  # type: ignore[attr-defined]

    def close_stdin(self) -> None:
        """Close the child's stdin (it sees EOF)."""
        pipe = self._transport.get_pipe_transport(0) if self._transport else None
        if pipe is not None:
            pipe.close()

    async def output_closed(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for stdout and stderr to reach end of file."""
        pending = [f for f in self._closed.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        """Release the pipes (after the child exited; they may still be open in what it left behind)."""
        if self._transport is not None:
            self._transport.close()
        for fd in (1, 2):
            self._pipe_closed(fd)

    def _received(self, fd: int, data: bytes) -> None:
        handler = self._on.get(fd)
        if handler is not None:
            handler(data)

    def _pipe_closed(self, fd: int) -> None:
        closed = self._closed.get(fd)
        if closed is not None and not closed.done():
            closed.set_result(None)

    def _exited(self) -> None:
        returncode = self._transport.get_returncode() if self._transport else None
        if self.pid is not None:
            # The group outlives its leader while anything it forked lives on; the group id cannot be
            # reused while it does.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        if self.exited is not None and not self.exited.done():
            self.exited.set_result(returncode if returncode is not None else -signal.SIGKILL)


async def collect_stacks(relay: LineRelay, mark: int, wait_s: float = 1.0) -> str:
    """The faulthandler dump a worker wrote to ``relay`` after line ``mark`` (waiting up to ``wait_s``)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    seen = -1
    while True:
        await asyncio.sleep(0.1)
        lines = relay.since(mark)
        start = next((i for i, line in enumerate(lines) if _STACK_HEAD.match(line)), None)
        # faulthandler writes the whole dump at once: done when it appeared and nothing more came
        if (start is not None and len(lines) == seen) or asyncio.get_running_loop().time() > deadline:
            break
        seen = len(lines)
    if start is None:
        return ""
    dump = [line for line in lines[start:] if _STACK_HEAD.match(line) or line.startswith("  File ") or not line]
    return "\n".join(dump).strip()


_STACK_HEAD = re.compile(r"^(Current thread|Thread) 0x[0-9a-f]+ ")
