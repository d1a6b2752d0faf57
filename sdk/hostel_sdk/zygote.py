"""A zygote: ``python -m hostel_sdk.zygote FD [MODULE]``, one per provider env, forking workers on request.

hostel's process launcher starts it in a provider's venv with the environment that provider's workers get.
It imports the worker runtime (grpc, pydantic, hostel-sdk) and, where that is safe, the provider's module,
then ``gc.freeze()``s what it imported so that the children share those pages copy-on-write. No gRPC
channel or server, no event loop and no thread exists in it: it is single-threaded when it forks, which is
checked before every fork. A restart or a new replica is then a ``fork()`` of an imported interpreter
instead of a Python start.

Protocol, on the ``SOCK_SEQPACKET`` socket whose descriptor is FD (one JSON message per packet):

- the zygote first prints ``ready`` (or ``threads N``: importing MODULE started threads, forking would be
  unsafe; it exits) as one line on stdout;
- host → zygote: ``{"fork": {"env": {...}, "cwd": path}}`` with three file descriptors (the worker's stdin,
  stdout and stderr); zygote → host: ``{"pid": N}``, or ``{"error": "..."}``;
- zygote → host, whenever a worker it forked is reaped: ``{"exited": pid, "returncode": n}`` (``-N`` for
  signal N).

The child starts a session of its own and runs ``hostel_sdk.worker`` as ``python -m hostel_sdk.worker``
would. The zygote exits when its stdin closes (the host is gone) or on SIGTERM; its workers do not die
with it: they watch the host's pipe on their own stdin.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
from typing import Any

_MAX_MESSAGE = 1 << 20


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _warm_pydantic() -> None:
    """Do once here what every worker does at its start: pydantic imports its schema machinery on the first model
    or adapter built (a provider's config class, hostel's method binders), and a worker that did that after the
    fork copied the zygote's pages its allocations and imports wrote to: built here, it is shared instead (1.5 MB
    less per provider, docs/performance.md)."""
    from pydantic import BaseModel, TypeAdapter

    class _Warm(BaseModel):
        value: int = 0

    _Warm(value=1)
    TypeAdapter(list[int]).validate_python([1])


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        os._exit(0)  # the host is gone


def _child(request: dict[str, Any], fds: list[int], control: socket.socket) -> None:
    """In the forked child: become a worker (never returns)."""
    code = 70
    try:
        control.close()
        os.setsid()  # a session of its own: signals to its group reach what it forks; Ctrl-C does not
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        if request.get("cwd"):
            os.chdir(request["cwd"])
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the worker reads fd 0 itself; this only marks it a pipe
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        sys.argv = [sys.executable, "-m", "hostel_sdk.worker"]
        from hostel_sdk import worker

        code = worker.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a worker must not fall back into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _send(control, {"exited": pid, "returncode": code})


def main() -> int:
    """Entry point of ``python -m hostel_sdk.zygote``."""
    control = socket.socket(fileno=int(sys.argv[1]))
    module = sys.argv[2] if len(sys.argv) > 2 else None
    # The worker runtime, and what the provider imports, once for every worker this zygote forks.
    from hostel_sdk import _forks, _grpc_env

    _forks.disable_grpc_fork_handlers()
    _grpc_env.prefer_epoll_polling()
    import grpc.aio  # noqa: F401

    from hostel_sdk import worker  # noqa: F401

    with contextlib.suppress(Exception):  # a pydantic this cannot warm: the workers do it themselves, as before
        _warm_pydantic()

    if module:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - the worker will report it properly at its start
            print(f"zygote: importing {module} failed ({type(exc).__name__}); workers import it themselves",
                  file=sys.stderr, flush=True)  # fmt: skip
    if _threads() > 1:
        os.write(1, f"threads {_threads()}\n".encode())
        return 3
    gc.collect()
    gc.freeze()  # what is imported now stays shared with the children, untouched by their collections
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    os.write(1, b"ready\n")
    while True:
        readable, _, _ = select.select([control.fileno(), wake_r, 0], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            _reap(control)
        if 0 in readable and not os.read(0, 4096):
            return 0  # stdin closed: the host is gone
        if control.fileno() not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, 3)
        except OSError:
            return 0
        if not data:
            return 0
        request = json.loads(data).get("fork", {})
        if len(fds) != 3 or _threads() > 1:
            for fd in fds:
                os.close(fd)
            _send(control, {"error": "bad fork request" if len(fds) != 3 else "the zygote has threads"})
            continue
        pid = os.fork()
        if pid == 0:
            os.close(wake_r)
            os.close(wake_w)
            signal.set_wakeup_fd(-1)
            _child(request, fds, control)
        for fd in fds:
            os.close(fd)
        _send(control, {"pid": pid})


if __name__ == "__main__":
    sys.exit(main())
