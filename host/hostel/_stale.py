"""Socket directories that hosts killed without a chance to clean up (SIGKILL, OOM) left behind.

Each host keeps its sockets in ``$TMPDIR/hostel-<pid>-<12 hex>`` (0700) and removes it when it stops. One that
was killed cannot, so a host starting removes those of its own user whose pid is no longer running. A pid
that runs again (reused) keeps its directory: never remove what might be live.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

_NAME = re.compile(r"hostel-(\d+)-[0-9a-f]{12}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_socket_dirs(base: Path) -> list[Path]:
    """Remove the socket directories under ``base`` left by this user's hosts that are gone; the removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid() or _running(int(match.group(1))):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d socket directories of hosts that are gone: %s", len(removed),
                    ", ".join(p.name for p in removed))  # fmt: skip
    return removed
