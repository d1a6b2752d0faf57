"""Making the worker safe to fork from, for providers that fork: ``multiprocessing`` with Linux's default
start method, ``ProcessPoolExecutor``, torch ``DataLoader`` workers, ``datasets.map(num_proc=...)``.

Two things a forked child of a worker would otherwise inherit:

- gRPC's at-fork handlers. With gRPC's fork support on (grpcio's build default), a fork while the worker's
  ``grpc.aio`` server runs has the child re-initialise gRPC state copied mid-use; children died with
  SIGSEGV before their first line. The worker's children never use its server, so fork support is turned
  off before ``grpc`` is first imported (``GRPC_ENABLE_FORK_SUPPORT``; a provider's environment may set it
  back on).
- The worker's asyncio signal handling: a no-op Python handler for SIGTERM/SIGINT and the event loop's
  wakeup fd. A child would ignore ``Pool.terminate()``'s SIGTERM (the pool waits forever), and a signal to
  the child would be written to the *worker's* loop, which would shut the worker down. After every fork
  the child gets default dispositions, no wakeup fd and, on Python 3.11, no running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable

FORK_SUPPORT_ENV = "GRPC_ENABLE_FORK_SUPPORT"


def disable_grpc_fork_handlers() -> None:
    """Keep gRPC from installing its at-fork handlers: call before ``grpc`` is imported."""
    if "grpc" in sys.modules:
        return  # too late to matter (a provider's .pth imported it); the worker still serves
    os.environ.setdefault(FORK_SUPPORT_ENV, "false")


def reset_signals_in_children(signals: Iterable[int]) -> None:
    """After every ``os.fork()`` of this process, the child starts with default dispositions for ``signals``.

    The signals stay blocked across the fork itself: one that reaches the child before its dispositions are
    reset (``Pool.terminate()`` right after the pool forked) would otherwise run the worker's handler in the
    child, be lost there, and be written to the worker's own loop through the shared wakeup fd.
    """
    handled = set(signals)
    forking = threading.local()  # the mask of the thread that forks, for the parent and the child to restore

    def before() -> None:
        forking.mask = signal.pthread_sigmask(signal.SIG_BLOCK, handled)

    def restore() -> None:
        mask = getattr(forking, "mask", None)
        if mask is not None:
            forking.mask = None
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def in_child() -> None:
        with contextlib.suppress(ValueError):  # not the main thread: cannot happen after a fork
            signal.set_wakeup_fd(-1)
        for sig in handled:
            signal.signal(sig, signal.SIG_DFL)
        asyncio.events._set_running_loop(None)  # Python 3.12 does this itself
        restore()  # a signal that came meanwhile is delivered now, with the default disposition

    os.register_at_fork(before=before, after_in_parent=restore, after_in_child=in_child)
