"""The admin token: what ``/v1/hostel/*`` (status, reload, start/stop/restart a provider) needs on a host without
``server.auth``.

Loopback is no boundary between the processes of one machine: a provider's worker (any unsandboxed one, or a
sandboxed one with ``network: any``) can reach the gateway's port like any client. So ``hostel run`` makes a token
per run, writes it to ``$HOSTEL_HOME/admin/<port>.token`` (0600, in a 0700 directory a sandboxed worker cannot
read) for ``hostel ps``/``restart``/``stop``/``start``/``reload``, and the admin routes refuse a request without
it (``X-Hostel-Admin``). With ``server.auth`` the bearer token guards every route instead; ``server.open_admin:
true`` drops the requirement for scripts on a machine where everything local is trusted.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from hostel.gateway.http_errors import bad_request
from hostel.gateway.requests import refused

ADMIN_HEADER = "X-Hostel-Admin"


def admin_token_path(home: Path, port: int) -> Path:
    """Where the admin token of the host serving ``port`` is kept."""
    return home / "admin" / f"{port}.token"


def new_admin_token() -> str:
    """A token for one run."""
    return secrets.token_urlsafe(32)


def publish_admin_token(home: Path, port: int, token: str) -> None:
    """Put ``token`` where the CLI finds it: once the server's socket listens (a second ``hostel run`` on a port
    in use never gets that far, so it cannot replace the first's token)."""
    path = admin_token_path(home, port)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.replace(staged, path)


def withdraw_admin_token(home: Path, port: int, token: str) -> None:
    """Remove the token's file, if it is still this run's."""
    path = admin_token_path(home, port)
    with contextlib.suppress(OSError):
        if path.read_text().strip() == token:
            path.unlink()


def refuse_without_token(request: Request, token: str | None) -> Response | None:
    """``None`` when ``request`` may use an admin route, else the 403 that says how to."""
    if token is None:
        return None
    given = request.headers.get(ADMIN_HEADER, "")
    if given and hmac.compare_digest(given.encode(), token.encode()):
        return None
    message = (
        f"{request.url.path} needs this host's admin token in the {ADMIN_HEADER} header: hostel ps, restart, stop, "
        "start and reload read it from $HOSTEL_HOME/admin/<port>.token (docs/http.md)"
    )
    return refused(bad_request(message, type_name="PermissionError"), 403)
