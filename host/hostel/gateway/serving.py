"""Serving the gateway: ``hostel run``'s HTTP(S) server around a ``Host``, its signals and its safe defaults.

uvicorn serves ``gateway.create_app``; SIGINT/SIGTERM stop it gracefully within one grace shared with the
workers, a second signal kills the workers; SIGHUP reloads the run config. Before anything starts, a
non-loopback address without ``server.auth`` is refused (unless ``--insecure``) and ``server.tls_*`` is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from hostel.config import ServerSettings
from hostel.errors import ConfigError, HostelError, Problem
from hostel.gateway import create_app
from hostel.gateway.admin import new_admin_token, publish_admin_token, withdraw_admin_token
from hostel.gateway.auth import make_authenticator
from hostel.gateway.guard import is_loopback
from hostel.host import Host

logger = logging.getLogger("hostel.gateway")


def check_bind(address: str, server: ServerSettings, *, insecure: bool) -> None:
    """``ConfigError`` for serving a non-loopback address without authentication, unless told to anyway."""
    if is_loopback(address) or server.auth is not None or insecure or server.insecure:
        return
    raise ConfigError(
        [
            Problem(
                "server",
                "host",
                f"refusing to serve on {address} without authentication: anyone who reaches the port could call "
                "every provider with this host's API keys. Set server.auth (docs/http.md), or pass --insecure "
                "(server.insecure: true) if something in front of hostel authenticates",
            )
        ]
    )


class SignalFreeServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to its caller."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # hostel handles SIGINT/SIGTERM itself: uvicorn would re-raise them once it has shut down,
        # before the workers are stopped.
        yield


async def serve(host: Host, *, address: str, port: int, insecure: bool = False) -> None:
    """Start ``host``, serve HTTP(S) until SIGINT/SIGTERM, then stop it. A second signal forces the stop.

    ``ConfigError`` before anything starts for a non-loopback ``address`` without ``server.auth`` (unless
    ``insecure``), or an ``auth`` or TLS setting that cannot be used."""
    grace = host.config.hostel.stop_grace_s
    server_settings = host.config.server
    check_bind(address, server_settings, insecure=insecure)
    base = host.config.base_dir
    authenticator = make_authenticator(server_settings.auth, base) if server_settings.auth else None
    tls = _tls_options(server_settings, base)
    admin_token = new_admin_token() if server_settings.auth is None and not server_settings.open_admin else None
    app = create_app(host, bind=address, authenticator=authenticator, admin_token=admin_token)
    await _serve(host, uvicorn.Config(
        app, host=address, port=port, log_level="warning",
        access_log=False, lifespan="off", timeout_graceful_shutdown=max(int(grace), 1), **tls,
    ), grace=grace, authenticator=authenticator, admin_token=admin_token)  # fmt: skip


async def _serve(
    host: Host, config: uvicorn.Config, *, grace: float, authenticator: Any, admin_token: str | None
) -> None:
    """Serve ``config`` until a signal, then stop ``host`` within ``grace``."""
    server = SignalFreeServer(config)
    loop = asyncio.get_running_loop()
    received: list[int] = []

    stop_by: list[float] = []  # when the grace of a signalled stop ends (loop time)

    def on_signal(sig: int) -> None:
        received.append(sig)
        if len(received) == 1:
            logger.warning("received %s: stopping (send it again to force)", signal.Signals(sig).name)
            stop_by.append(loop.time() + grace)
            server.should_exit = True
        else:
            logger.warning("received %s again: killing the workers now", signal.Signals(sig).name)
            server.force_exit = True
            host.kill()

    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        logger.warning("received SIGHUP: reloading %s", host.config.label)
        task = asyncio.create_task(_reload(host))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    sock = _bind(config)  # a port in use is refused before any worker starts
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await host.start()
        if not received:
            _listen(sock, config)
            # Listening first, then the token: the file never names a run that does not hold the port, and
            # a CLI call made once it is there waits in the backlog until uvicorn accepts.
            if admin_token is not None:
                publish_admin_token(host.envs.home, config.port, admin_token)
            listening = asyncio.create_task(_announce(server, config.host, config.port, len(host.status())))
            await server.serve(sockets=[sock])
            listening.cancel()
    finally:
        sock.close()
        for task in reloads:
            task.cancel()
        await asyncio.gather(*reloads, return_exceptions=True)
        # The HTTP drain and the workers' share one grace: a stop takes that plus the kill allowance.
        if admin_token is not None:
            withdraw_admin_token(host.envs.home, config.port, admin_token)
        await host.stop(grace_s=max(stop_by[0] - loop.time(), 0.0) if stop_by else None)
        if authenticator is not None:
            await authenticator.close()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _reload(host: Host) -> None:
    """SIGHUP: reload, and say in the log what happened (the reload logs its report)."""
    try:
        await host.reload()
    except HostelError as exc:
        logger.error("reload refused, nothing changed: %s", exc)


def _tls_options(server: ServerSettings, base: Path) -> dict[str, Any]:
    """uvicorn's TLS options for ``server.tls_*`` (paths relative to the run config)."""
    if server.tls_certfile is None and server.tls_keyfile is None:
        if server.tls_cafile is not None:
            raise ConfigError([Problem("server", "tls_cafile", "needs tls_certfile and tls_keyfile too")])
        return {}
    if server.tls_certfile is None or server.tls_keyfile is None:
        raise ConfigError([Problem("server", "tls_certfile", "tls_certfile and tls_keyfile go together")])
    options: dict[str, Any] = {
        "ssl_certfile": str(base / server.tls_certfile),
        "ssl_keyfile": str(base / server.tls_keyfile),
    }
    for name, path in (("tls_certfile", options["ssl_certfile"]), ("tls_keyfile", options["ssl_keyfile"])):
        if not Path(path).is_file():
            raise ConfigError([Problem("server", name, f"{path}: no such file")])
    if server.tls_cafile is not None:  # mutual TLS: clients must present a certificate this CA signed
        options.update(ssl_ca_certs=str(base / server.tls_cafile), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _in_use(config: uvicorn.Config, exc: OSError) -> ConfigError:
    if exc.errno != errno.EADDRINUSE:  # an address this machine does not have, a port below 1024 ...
        return ConfigError([Problem("server", "host", f"cannot listen on {config.host}:{config.port}: {exc}")])
    return ConfigError([Problem("server", "port", (
        f"cannot listen on {config.host}:{config.port}: another server (another hostel run?) is there: "
        "stop it, or pick another port (server.port, or --port)"
    ))])  # fmt: skip


def _bind(config: uvicorn.Config) -> socket.socket:
    """A socket bound to the server's address, not yet listening, or ``ConfigError`` naming the address."""
    # The address family as uvicorn chooses it when it binds by itself ("localhost" is IPv4's).
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        raise _in_use(config, exc) from None
    return sock


def _listen(sock: socket.socket, config: uvicorn.Config) -> None:
    try:  # two servers bound at once (SO_REUSEADDR allows it until one listens): the second fails here
        sock.listen(config.backlog)
    except OSError as exc:
        raise _in_use(config, exc) from None


async def _announce(server: uvicorn.Server, address: str, port: int, providers: int) -> None:
    """Once uvicorn accepts connections: the log line that says so."""
    while not server.started:
        await asyncio.sleep(0.01)
    scheme = "https" if server.config.ssl_certfile else "http"
    logger.info("hostel serving %d providers on %s://%s:%d (Ctrl-C to stop)", providers, scheme, address, port)
