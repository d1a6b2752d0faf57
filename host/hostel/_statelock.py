"""One host per state directory (where a config's registrations live: docs/resources.md).

The first host started on a config holds its state directory (an exclusive ``flock`` on ``host.lock`` in it,
released by the kernel when the host exits, however it exits). Another host started on the same config meanwhile
(a second ``hostel run``, a ``hostel call`` beside a running server) says so and keeps its registrations in
memory: sharing the file would let the two hosts' providers, which keep registries in memory, drift apart
without a word.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


class StateClaim:
    """A held state directory; ``release`` (or the process's end) lets it go."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another host have it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim_state(directory: Path) -> StateClaim | None:
    """Hold ``directory`` for this host; ``None`` (and a warning naming the holder) if another host holds it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / "host.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        logger.warning(
            "another host (pid %s) holds the state of this config (%s): this one keeps its registered benchmarks, "
            "datasets and scoring functions in memory, lost when it stops. Call the running server instead, or "
            "give this config its own hostel.state_dir",
            holder,
            directory,
        )
        return None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateClaim(directory, fd)
