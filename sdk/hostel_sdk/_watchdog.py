"""The worker's watchdog: a thread that tells the host how long the event loop has been blocked.

A provider that does synchronous work inside an ``async def`` (a sync HTTP client, a tokenizer, ``pool.map``)
blocks the loop the gRPC server answers from, so the liveness probe misses although the worker is merely busy.
This thread answers beside the loop: on a Unix socket next to the worker's own (``LIVENESS_SOCKET``), each
connection gets one line, the seconds since the loop last ran (``0.000`` when it runs), and is closed. A
worker that answers nothing there either (stopped, or a C call holding the GIL) makes no progress at all.

Once the loop has been blocked for ``REPORT_AFTER_S`` the thread logs, once, where the loop is stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import sys
import threading
import time
import traceback

from hostel_sdk._handshake import LIVENESS_SOCKET

logger = logging.getLogger(__name__)

BEAT_S = 0.5  # how often the loop marks that it runs
REPORT_AFTER_S = 10.0


class LoopWatchdog:
    """Watches one event loop from a daemon thread, and answers how long it has been blocked on ``path``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str, provider_id: str) -> None:
        self._loop = loop
        self._path = path
        self._provider_id = provider_id
        self._last_beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._listener.bind(path)
        self._listener.listen(16)
        self._beat()
        threading.Thread(target=self._serve, name="hostel-watchdog", daemon=True).start()

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        if not self._closed.is_set():
            self._loop.call_later(BEAT_S, self._beat)

    def blocked_s(self) -> float:
        """Seconds since the loop last ran (0 while it keeps running)."""
        late = time.monotonic() - self._last_beat - BEAT_S
        return late if late > BEAT_S else 0.0

    def _serve(self) -> None:
        reported = False
        while not self._closed.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], 1.0)
            except (OSError, ValueError):
                return  # closed
            blocked = self.blocked_s()
            if blocked >= REPORT_AFTER_S and not reported:
                reported = True
                logger.warning(
                    "provider %s: event loop blocked for %d s (synchronous work in an async method?) in:\n%s",
                    self._provider_id, int(blocked), self._loop_stack(),
                )  # fmt: skip
            elif blocked == 0.0 and reported:
                reported = False
                logger.warning("provider %s: event loop runs again", self._provider_id)
            if readable:
                self._answer(blocked)

    def _answer(self, blocked: float) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(1.0)
            with contextlib.suppress(OSError):
                conn.sendall(f"{blocked:.3f}\n".encode())

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        return "".join(traceback.format_stack(frame)).rstrip() if frame is not None else "(no stack)"

    def close(self) -> None:
        """Stop answering (the worker is stopping)."""
        self._closed.set()
        self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self._path)


def liveness_path(socket_path: str) -> str:
    """Where the watchdog of the worker serving on ``socket_path`` answers."""
    return os.path.join(os.path.dirname(socket_path), LIVENESS_SOCKET)
