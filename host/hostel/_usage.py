"""What a process costs: resident memory, proportional set size and CPU time (psutil, Linux ``/proc``).

PSS counts each shared page once, divided among the processes that map it, so the PSS of the host and its
workers adds up to what they really hold together; RSS counts shared libraries in every process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Usage:
    """One process's memory (bytes) and CPU time (user + system seconds) at one moment."""

    rss_bytes: int
    pss_bytes: int | None  # None where the kernel does not say (no smaps_rollup), or we may not read it
    cpu_seconds: float


def process_usage(pid: int | None = None) -> Usage | None:
    """The usage of process ``pid`` (this process by default), or ``None`` if it is gone or unreadable."""
    try:
        process = psutil.Process(os.getpid() if pid is None else pid)
        with process.oneshot():
            cpu = process.cpu_times()
            try:
                full = process.memory_full_info()
                rss, pss = full.rss, getattr(full, "pss", None)
            except psutil.AccessDenied:
                rss, pss = process.memory_info().rss, None
        return Usage(rss_bytes=int(rss), pss_bytes=None if pss is None else int(pss), cpu_seconds=cpu.user + cpu.system)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
