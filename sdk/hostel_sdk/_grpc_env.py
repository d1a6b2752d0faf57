"""How gRPC polls its sockets, chosen before ``grpc`` is first imported: it reads ``GRPC_EXPERIMENTS`` then,
once per process.

Recent grpcio on Linux hands socket I/O to EventEngine's own poller threads. A message that arrives then wakes
an EventEngine thread, which completes the call and wakes grpc.aio's poller thread, which wakes the event loop;
gRPC's older epoll poller (still built in, and what grpcio used before EventEngine) reads the socket in
grpc.aio's poller thread itself, one thread fewer to wake each way. A host's call to a worker crosses two
processes, so it pays that twice, and most when the processes were idle before the call: a raw ``grpc.aio``
unary call between two processes idle 1 ms between calls made 10.6 context switches in the caller and 12.9 in
the server with EventEngine's sockets, 5.1 and 7.3 without (``docs/performance.md``).

So hostel turns EventEngine's client and listener experiments off, in its host and in every worker (each
decides for the grpcio it has; workers get both variables from the host), unless ``GRPC_EXPERIMENTS`` is
already set to something else (the user's choice stands) or ``HOSTEL_GRPC_EXPERIMENTS=default`` asks for
gRPC's own defaults, and only for the grpcio versions it was measured with: a newer grpcio may have retired
these experiments, and naming an unknown one makes gRPC log an error line at start.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

EXPERIMENTS_ENV = "GRPC_EXPERIMENTS"
OPT_OUT_ENV = "HOSTEL_GRPC_EXPERIMENTS"
EXPERIMENTS = "-event_engine_client,-event_engine_listener"
TESTED = ((1, 60), (1, 85))  # grpcio minor versions known to have both experiments (first, last)

_VERSION = re.compile(r"""__version__\s*=\s*["']+(\d+)\.(\d+)""")  # grpcio writes it in triple quotes


def installed_grpcio() -> tuple[int, int] | None:
    """grpcio's ``(major, minor)`` read from its files without importing it (importing it is what reads the
    setting), or ``None`` where grpcio is not installed or its version cannot be read."""
    spec = importlib.util.find_spec("grpc")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        try:
            match = _VERSION.search((Path(folder) / "_grpcio_metadata.py").read_text())
        except OSError:
            continue
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def prefer_epoll_polling() -> None:
    """Set ``GRPC_EXPERIMENTS`` for gRPC's epoll poller, if nothing else has decided: call before ``grpc`` is
    imported (after, it changes nothing)."""
    if "grpc" in sys.modules or os.environ.get(OPT_OUT_ENV) == "default":
        return
    current = os.environ.get(EXPERIMENTS_ENV)
    if current not in (None, EXPERIMENTS):
        return  # the user's own choice
    version = installed_grpcio()
    if version is not None and TESTED[0] <= version <= TESTED[1]:
        os.environ[EXPERIMENTS_ENV] = EXPERIMENTS
    elif current is not None:
        del os.environ[EXPERIMENTS_ENV]  # the host's choice, for its grpcio: this one may not know them
