"""Freed memory a worker keeps for reuse (glibc malloc, ``hostel.retain_freed_mb``), and gives back past that.

By default glibc maps each buffer above its mmap threshold (at most 32 MiB) fresh and unmaps it when freed, so a
worker that handles megabytes page-faults and zeroes every page of every buffer, every call: reading a 50 MB
file took 24 ms that way against 7 ms into reused memory here. With a retain size, buffers come from the heap
instead (mmap off when the size is above the 32 MiB glibc lets a threshold reach) and its freed top is kept up to
that size (a freed top past it is cut back to it, not to nothing). A freed buffer below something still in use is
not the heap's top and glibc would keep it however large; ``keep_within`` gives such memory back
(``malloc_trim``) once the worker holds more free than it may.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

_MMAP_THRESHOLD_MAX = 32 * 2**20  # the largest glibc accepts on 64-bit systems
CHECK_EVERY_S = 2.0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"
        )
    ]  # fmt: skip


def _libc(retain: int) -> Any:
    """The C library to set, or ``None``: not glibc on Linux, nothing to retain, or the user's own malloc settings
    in ``GLIBC_TUNABLES`` (which win)."""
    if retain <= 0 or not sys.platform.startswith("linux") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def _settings(retain: int) -> list[tuple[int, str, int]]:
    """glibc's malloc settings that keep up to ``retain`` bytes freed: (mallopt's parameter, as malloc.h numbers
    them, the same setting's tunable name, value)."""
    settings = [
        (-3, "mmap_threshold", min(retain, _MMAP_THRESHOLD_MAX)),
        (-1, "trim_threshold", retain),
        # When the freed top passes the threshold glibc gives back all of it but this pad: keep the retain size, so
        # that a call that freed more than that (an upload's chunks and their join) leaves the next one warm memory.
        (-2, "top_pad", retain),
    ]
    if retain > _MMAP_THRESHOLD_MAX:
        settings.append((-4, "mmap_max", 0))
    return settings


def retain_freed(retain: int) -> bool:
    """Keep up to ``retain`` bytes of freed memory for reuse; whether it was applied."""
    libc = _libc(retain)
    if libc is None:
        return False
    for parameter, _, value in _settings(retain):
        libc.mallopt(parameter, value)
    return True


def glibc_tunables(retain: int) -> str:
    """What ``retain_freed(retain)`` sets, as ``GLIBC_TUNABLES`` would set it (for a process to compare with)."""
    return ":".join(f"glibc.malloc.{name}={value}" for _, name, value in _settings(retain))


async def keep_within(retain: int, every_s: float = CHECK_EVERY_S) -> None:
    """Every ``every_s``, give back freed memory past ``retain`` bytes, as set by ``retain_freed(retain)`` (runs
    until cancelled; returns at once where that does nothing, or the C library has no ``mallinfo2``)."""
    libc = _libc(retain)
    if libc is None or not hasattr(libc, "mallinfo2"):
        return
    libc.mallinfo2.restype = _Mallinfo2
    trimmed: tuple[int, int] | None = None
    while True:
        await asyncio.sleep(every_s)
        info = libc.mallinfo2()
        state = (info.arena, info.fordblks)
        # Trimmed pages still count as free: look again only once the heap has changed since.
        if info.fordblks > retain and state != trimmed:
            libc.malloc_trim(ctypes.c_size_t(retain))
            after = libc.mallinfo2()
            trimmed = (after.arena, after.fordblks)
            logger.debug("gave back freed memory past %d MB (%d MB free)", retain >> 20, info.fordblks >> 20)
