"""The provider worker: ``python -m hostel_sdk.worker``, started by hostel in the provider's venv.

It reads one JSON line from stdin (the provider spec and config: never argv or the environment, configs
hold secrets), builds the provider object, serves it over gRPC on a Unix socket, and prints one handshake
line on its original stdout. Everything the provider prints goes to stderr, so it can never be mistaken
for the handshake. It exits when the host asks it to, on SIGTERM, or when the host dies.
"""

from __future__ import annotations

import asyncio
import ctypes
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass

from hostel_sdk import _forks, _grpc_env

_forks.disable_grpc_fork_handlers()
_grpc_env.prefer_epoll_polling()

import grpc  # noqa: E402 - after the settings gRPC reads when imported

from hostel_sdk import __version__, _llama_stack, _memory, _sandbox, _telemetry  # noqa: E402
from hostel_sdk._deps import HostClient  # noqa: E402
from hostel_sdk._handshake import PROTOCOL_VERSION, STACKS_SIGNAL, Handshake, Network, StartFailure  # noqa: E402
from hostel_sdk._health import HealthService, health_handler  # noqa: E402
from hostel_sdk._loader import StartError, load_provider  # noqa: E402
from hostel_sdk._service import ProviderService  # noqa: E402
from hostel_sdk._start import StartRequest  # noqa: E402
from hostel_sdk._watchdog import LoopWatchdog, liveness_path  # noqa: E402
from hostel_sdk._wire import TokenCheck, add_tcp_port, channel_options, worker_handler  # noqa: E402

logger = logging.getLogger("hostel_sdk.worker")  # not __main__ under -m

USAGE = f"""\
This is hostel-sdk {__version__}'s provider worker (protocol {PROTOCOL_VERSION}).
hostel starts it inside a provider's virtualenv and sends the provider's spec and config on stdin;
it is not meant to be run by hand. To try a provider, run `hostel call CONFIG PROVIDER_ID METHOD`,
or serve it in a test with `hostel_sdk.testing`. See docs/protocol.md to write a host of your own.
"""

_PR_SET_PDEATHSIG = 1


def _die_with_parent(host_pid: int | None, parent_death: bool = True) -> None:
    """Exit when the host goes away, even if it is SIGKILLed: parent-death signal, then stdin EOF (a worker
    forked by a zygote has only the latter: its parent is the zygote)."""
    if parent_death and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; relying on stdin EOF")
    if host_pid is not None and os.getppid() != host_pid:
        os._exit(70)  # the host died before we could arm the signal

    def watch_stdin() -> None:
        try:
            while os.read(0, 4096):  # raw fd: a buffered reader here would block interpreter shutdown
                pass
        except OSError:
            pass
        os._exit(70)  # stdin closed: the host is gone

    threading.Thread(target=watch_stdin, name="hostel-stdin-watch", daemon=True).start()


def _write_line(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


@dataclass(frozen=True)
class ServeOptions:
    """How the runtime serves, for hosts and harnesses that embed it differently (the test suite's fake worker
    plays a worker that ignores SIGTERM, or one without Worker.Session, through these)."""

    stop_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
    honour_shutdown_rpc: bool = True
    sessions: bool = True
    watchdog: bool = True


async def serve(request: StartRequest, handshake_fd: int, options: ServeOptions = ServeOptions()) -> int:
    """Build the provider, serve it, print the handshake, and wait to be told to stop."""
    # From C, in the signal handler itself: it works while the provider blocks the event loop.
    faulthandler.register(STACKS_SIGNAL, file=sys.stderr, all_threads=True, chain=False)
    _telemetry.configure(request.telemetry)  # before the provider is imported: instrumentors patch its libraries
    host_client = None
    host_target = request.host_target or (f"unix://{request.host_socket}" if request.host_socket else "")
    if host_target:
        host_client = HostClient(
            host_target,
            request.token,
            max_message_bytes=request.max_message_bytes,
            tls=dict(request.tls) if request.tls else None,
        )
    try:
        loaded = await load_provider(request, host_client)
    except StartError as exc:
        if exc.stage != "config":  # a config error says all there is in its message; a traceback would bury it
            traceback.print_exc(file=sys.stderr)
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, exc.stage, exc.message).format())
        return 1

    stop = asyncio.Event()
    grace = [request.grace_s]

    def on_shutdown(grace_s: float) -> None:
        grace[0] = grace_s
        stop.set()

    service = ProviderService(
        loaded.impl,
        provider_data_validator=loaded.validator,
        on_shutdown=on_shutdown if options.honour_shutdown_rpc else None,
        provider_data_var=_llama_stack.provider_data_var(),
        methods=loaded.methods,
        recording=loaded.recording,
        lenient_provider_data=request.lenient_provider_data,
    )
    server = grpc.aio.server(
        options=channel_options(request.max_message_bytes, local=request.listen is None),
        interceptors=[TokenCheck(request.server_token)] if request.server_token else None,
    )
    server.add_generic_rpc_handlers(
        [worker_handler(service, sessions=options.sessions), health_handler(HealthService(loaded.impl))]
    )
    network, address = _listen(server, request)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in options.stop_signals:
        loop.add_signal_handler(sig, stop.set)
    _forks.reset_signals_in_children(options.stop_signals)
    watchdog = (
        LoopWatchdog(loop, liveness_path(request.socket_path), request.provider_id)
        if options.watchdog and request.socket_path
        else None
    )

    trimming = asyncio.create_task(_memory.keep_within(request.retain_freed_bytes), name="hostel-keep-within")

    _write_line(handshake_fd, Handshake(PROTOCOL_VERSION, network, address, os.getpid(), __version__).format())
    os.close(handshake_fd)
    logger.debug("provider %s serving on %s [pid %d]", request.provider_id, address, os.getpid())

    await stop.wait()
    trimming.cancel()
    if watchdog is not None:
        watchdog.close()
    service.drain()
    await server.stop(grace[0])
    shutdown = getattr(loaded.impl, "shutdown", None)
    if callable(shutdown):
        try:
            result = shutdown()
            if asyncio.iscoroutine(result):
                await asyncio.wait_for(result, timeout=grace[0] or None)
        except Exception:
            logger.exception("provider %s: shutdown() raised", request.provider_id)
    _telemetry.shutdown()
    return 0


def _listen(server: grpc.aio.Server, request: StartRequest) -> tuple[Network, str]:
    """Listen on the host's Unix socket path, or on TCP (``listen``: bind host, advertised host) for remote hosts."""
    listen = request.listen
    if listen is None:
        assert request.socket_path, "a start request names a socket path or a TCP listen address"
        server.add_insecure_port(f"unix:{request.socket_path}")
        return "unix", request.socket_path
    port = add_tcp_port(server, f"{listen.host}:{listen.port}", dict(request.tls) if request.tls else None)
    return "tcp", f"{listen.advertise or listen.host}:{port}"


def _read_line(fd: int) -> bytes:
    """One line from ``fd``, unbuffered, so nothing after it is swallowed by a buffer."""
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def main() -> int:
    """Entry point of ``python -m hostel_sdk.worker``."""
    if sys.stdin is None or sys.stdin.isatty():
        sys.stderr.write(USAGE)
        return 2
    # Keep the real stdout for the handshake alone; the provider's prints go to stderr.
    handshake_fd = os.dup(1)
    os.dup2(2, 1)
    line = _read_line(0)
    if not line.strip():
        sys.stderr.write(USAGE)
        return 2
    try:
        raw = json.loads(line)
        protocol = raw.get("protocol") if isinstance(raw, dict) else None
        request = StartRequest.from_json(line) if protocol == PROTOCOL_VERSION else None
    except ValueError as exc:
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, "handshake", f"bad start request: {exc}").format())
        return 1
    if request is None:
        message = (
            f"the host speaks hostel protocol {protocol}, this worker's hostel-sdk {__version__} speaks "
            f"{PROTOCOL_VERSION}; rebuild the provider's env so it gets the host's hostel-sdk"
        )
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, "handshake", message).format())
        return 1
    logging.basicConfig(level=request.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:  # before any thread starts: a Landlock domain binds the calling thread and those it creates
        _sandbox.apply_limits(request.limits)
        if request.sandbox is not None:
            _sandbox.apply(request.sandbox)
    except (_sandbox.SandboxError, OSError, ValueError) as exc:
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, "config", f"sandbox: {exc}").format())
        return 1
    _die_with_parent(request.host_pid, request.parent_death)
    _memory.retain_freed(request.retain_freed_bytes)
    return asyncio.run(serve(request, handshake_fd))


if __name__ == "__main__":
    sys.exit(main())
