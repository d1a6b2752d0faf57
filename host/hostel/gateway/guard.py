"""The gateway's door: which requests reach a route at all.

In order: the ``Host`` header must be a name this server answers to (loopback names when it listens on
loopback: a DNS-rebinding page gets 400); a browser's ``Origin`` must be the server's own or one
``server.cors`` allows (a cross-site page gets 403, even for the "simple" requests that skip a CORS
preflight); a POST must say ``application/json`` (415: no HTML form or ``text/plain`` fetch gets through);
then, with ``server.auth``, a bearer token its provider accepts (401 with ``WWW-Authenticate``).
``/v1/health`` needs no token. The authenticated user is left in the scope for the routes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hostel.gateway.auth import Authenticator, AuthFailed
from hostel_sdk import codec

logger = logging.getLogger(__name__)

SCOPE_USER = "hostel.user"
OPEN_PATHS = frozenset({"/v1/health"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(address: str) -> bool:
    """Whether ``address`` (a name or IP the server binds) is a loopback address."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _body(
    status: int, kind: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> tuple[dict[str, Any], bytes]:
    body = codec.dumps({"error": {"type": kind, "message": message, "provider_id": None}})
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    return {"type": "http.response.start", "status": status, "headers": head}, body


class Guard:
    """ASGI middleware: Host, Origin, Content-Type, then authentication."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: Iterable[str] | None,
        origins: Iterable[str] = (),
        origin_regex: str | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        """``hosts``: names the server answers to (``None``: any); ``origins``/``origin_regex``: cross-site
        origins allowed besides the server's own (``server.cors``)."""
        self.app = app
        self._hosts = None if hosts is None else {h.lower() for h in hosts}
        self._origins = {o.rstrip("/").lower() for o in origins}
        self._origin_regex = re.compile(origin_regex) if origin_regex else None
        self._auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        refused = self._refusal(scope, headers, host)
        if refused is None and self._auth is not None and scope["path"] not in OPEN_PATHS:
            refused = await self._authenticate(scope, headers)
        if refused is not None:
            start, body = refused
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str], host: str) -> tuple[dict[str, Any], bytes] | None:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self._hosts is not None and name.lower() not in self._hosts:
            return _body(
                400, "BadRequest",
                f"Host {host!r} is not a name this server answers to; add it to server.allowed_hosts if it should",
            )  # fmt: skip
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host, scope):
            return _body(403, "Forbidden", f"requests from origin {origin!r} are not allowed (server.cors)")
        if scope["method"] == "POST":
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                return _body(415, "UnsupportedMediaType", "POST bodies must be JSON (Content-Type: application/json)")
        return None

    def _origin_allowed(self, origin: str, host: str, scope: Scope) -> bool:
        origin = origin.rstrip("/").lower()
        scheme = scope.get("scheme", "http")
        if origin == f"{scheme}://{host.lower()}":  # the server's own pages
            return True
        return (
            origin in self._origins
            or "*" in self._origins
            or bool(self._origin_regex and self._origin_regex.fullmatch(origin))
        )

    async def _authenticate(self, scope: Scope, headers: dict[str, str]) -> tuple[dict[str, Any], bytes] | None:
        assert self._auth is not None
        kind, _, token = headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            challenge = [(b"www-authenticate", b'Bearer realm="hostel"')]
            return _body(401, "AuthenticationRequired", "send Authorization: Bearer <token>", challenge)
        try:
            scope[SCOPE_USER] = await self._auth.authenticate(token.strip(), scope)
        except AuthFailed as exc:
            value = f'Bearer realm="hostel", error="{exc.error}", error_description="{exc.message}"'
            return _body(401, "AuthenticationFailed", exc.message, [(b"www-authenticate", value.encode())])
        return None
