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
from typing import Any

import grpc

from hostel_sdk import __version__, _llama_stack, _sandbox
from hostel_sdk._deps import HostClient, build_deps, inject_stores
from hostel_sdk._exposure import exposed_methods
from hostel_sdk._handshake import PROTOCOL_VERSION, STACKS_SIGNAL, Handshake, Network, StartFailure
from hostel_sdk._health import HealthService, health_handler
from hostel_sdk._loader import LoadRequest, StartError, build_config, create_impl, import_module, load_validator
from hostel_sdk._service import ProviderService
from hostel_sdk._wire import MAX_MESSAGE_BYTES, TokenCheck, add_tcp_port, channel_options, worker_handler

logger = logging.getLogger("hostel_sdk.worker")  # not __main__ under -m

USAGE = f"""\
This is hostel-sdk {__version__}'s provider worker (protocol {PROTOCOL_VERSION}).
hostel starts it inside a provider's virtualenv and sends the provider's spec and config on stdin;
it is not meant to be run by hand. To try a provider, run `hostel call CONFIG PROVIDER_ID METHOD`,
or serve it in a test with `hostel_sdk.testing`. See docs/protocol.md to write a host of your own.
"""

_PR_SET_PDEATHSIG = 1


def _die_with_parent(host_pid: int | None) -> None:
    """Exit when the host goes away, even if it is SIGKILLed: parent-death signal, then stdin EOF."""
    if sys.platform.startswith("linux"):
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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_MMAP_THRESHOLD_MAX = 32 * 2**20  # the largest glibc accepts on 64-bit systems


def _retain_freed_memory(retain: int) -> None:
    """Keep up to ``retain`` bytes of freed memory for reuse (glibc malloc).

    By default glibc maps each large buffer fresh and unmaps it when freed, so a worker echoing megabytes
    page-faults every page of every message, every call (2-4 ms per 8 MB on a VM). Below the mmap threshold
    buffers come from the heap instead, and its freed top is kept up to the trim threshold. The user's own
    ``GLIBC_TUNABLES`` for malloc win; other C libraries keep their defaults.
    """
    if retain <= 0 or not sys.platform.startswith("linux") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, min(retain, _MMAP_THRESHOLD_MAX))
    mallopt(_M_TRIM_THRESHOLD, retain)


def _write_line(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


async def serve(payload: dict[str, Any], handshake_fd: int) -> int:
    """Build the provider, serve it, print the handshake, and wait to be told to stop."""
    # From C, in the signal handler itself: it works while the provider blocks the event loop.
    faulthandler.register(STACKS_SIGNAL, file=sys.stderr, all_threads=True, chain=False)
    request = LoadRequest(
        provider_id=payload["provider_id"],
        kind=payload["kind"],
        module=payload["module"],
        config_class=payload.get("config_class"),
        config=payload.get("config") or {},
        provider_data_validator=payload.get("provider_data_validator"),
    )
    host_client = None
    tls = payload.get("tls")
    host_target = payload.get("host_target") or (
        f"unix://{payload['host_socket']}" if payload.get("host_socket") else ""
    )
    if host_target:
        host_client = HostClient(
            host_target,
            payload["token"],
            max_message_bytes=int(payload.get("max_message_bytes", MAX_MESSAGE_BYTES)),
            tls=tls,
        )
    try:
        module = import_module(request.module)
        config = build_config(request)
        validator = load_validator(request.provider_data_validator)
        deps = build_deps(host_client, payload.get("deps") or [])
        impl = await create_impl(request, module, config, deps)
        inject_stores(impl, host_client)
        missing = _llama_stack.missing_methods(impl, payload.get("api", ""))
        if missing:
            raise StartError(
                "protocol",
                f"{type(impl).__name__} lacks methods of the {payload.get('api')} API protocol of its Llama Stack: "
                f"{', '.join(missing)}; the provider does not fit this Llama Stack version "
                "(pin another with constraints)",
            )
    except StartError as exc:
        traceback.print_exc(file=sys.stderr)
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, exc.stage, exc.message).format())
        return 1

    stop = asyncio.Event()
    grace = [float(payload.get("grace_s", 5.0))]

    def on_shutdown(grace_s: float) -> None:
        grace[0] = grace_s
        stop.set()

    _llama_stack.annotate(
        impl,
        provider_id=request.provider_id,
        provider_type=payload.get("provider_type", ""),
        api=payload.get("api", ""),
        validator=request.provider_data_validator,
    )
    service = ProviderService(
        impl,
        provider_data_validator=validator,
        on_shutdown=on_shutdown,
        provider_data_var=_llama_stack.provider_data_var(),
        methods=exposed_methods(impl, api=payload.get("api", ""), expose=payload.get("expose") or ()),
    )
    server_token = payload.get("server_token")
    server = grpc.aio.server(
        options=channel_options(int(payload.get("max_message_bytes", MAX_MESSAGE_BYTES))),
        interceptors=[TokenCheck(server_token)] if server_token else None,
    )
    server.add_generic_rpc_handlers([worker_handler(service), health_handler(HealthService(impl))])
    network, address = _listen(server, payload, tls)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    _write_line(handshake_fd, Handshake(PROTOCOL_VERSION, network, address, os.getpid(), __version__).format())
    os.close(handshake_fd)
    logger.info("provider %s serving on %s [pid %d]", request.provider_id, address, os.getpid())

    await stop.wait()
    service.drain()
    await server.stop(grace[0])
    shutdown = getattr(impl, "shutdown", None)
    if callable(shutdown):
        try:
            result = shutdown()
            if asyncio.iscoroutine(result):
                await asyncio.wait_for(result, timeout=grace[0] or None)
        except Exception:
            logger.exception("provider %s: shutdown() raised", request.provider_id)
    return 0


def _listen(server: grpc.aio.Server, payload: dict[str, Any], tls: dict[str, str] | None) -> tuple[Network, str]:
    """Listen on the host's Unix socket path, or on TCP (``listen``: bind host, advertised host) for remote hosts."""
    listen = payload.get("listen")
    if not listen:
        server.add_insecure_port(f"unix:{payload['socket_path']}")
        return "unix", payload["socket_path"]
    port = add_tcp_port(server, f"{listen['host']}:{int(listen.get('port', 0))}", tls)
    return "tcp", f"{listen.get('advertise') or listen['host']}:{port}"


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
    payload = json.loads(line)
    logging.basicConfig(
        level=payload.get("log_level", "WARNING"), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if payload.get("protocol") != PROTOCOL_VERSION:
        message = (
            f"the host speaks hostel protocol {payload.get('protocol')}, this worker's hostel-sdk {__version__} speaks "
            f"{PROTOCOL_VERSION}; rebuild the provider's env so it gets the host's hostel-sdk"
        )
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, "handshake", message).format())
        return 1
    try:  # before any thread starts: a Landlock domain binds the calling thread and those it creates
        _sandbox.apply_limits(payload.get("limits") or {})
        if payload.get("sandbox") is not None:
            _sandbox.apply(payload["sandbox"])
    except (_sandbox.SandboxError, OSError, ValueError) as exc:
        _write_line(handshake_fd, StartFailure(PROTOCOL_VERSION, "config", f"sandbox: {exc}").format())
        return 1
    _die_with_parent(payload.get("host_pid"))
    _retain_freed_memory(int(payload.get("retain_freed_bytes") or 0))
    return asyncio.run(serve(payload, handshake_fd))


if __name__ == "__main__":
    sys.exit(main())
