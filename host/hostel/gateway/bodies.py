"""Request bodies, bounded across every connection, and clients that go away mid-request.

Each route bounds one body (``hostel.max_message_mb``); this bounds them all together: the bytes of the bodies
that requests in flight are reading or hold (``server.max_request_bodies_mb``), the requests in flight from one
client address (``server.max_requests_per_client``) and the wait for a body's next bytes
(``server.body_timeout_s``). Past a bound a request is answered 503 with ``Retry-After`` (408 for a stalled body)
and its connection closed; nothing more of it is read. A client that disconnects before its answer is logged
at DEBUG: it is not the host's error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from prometheus_client import Gauge
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hostel.gateway.http_errors import bad_request
from hostel.gateway.requests import BadRequestError, refused

logger = logging.getLogger(__name__)


class BodyBudget:
    """ASGI middleware: the bounds above, for the app it wraps."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, per_client: int, body_timeout_s: float, gauge: Gauge | None = None
    ) -> None:
        """``gauge``: set to the bytes held, as they change (``/metrics``)."""
        self.app = app
        self.gauge = gauge
        self.max_bytes = max_bytes
        self.per_client = per_client
        self.body_timeout_s = body_timeout_s
        self.held = 0  # bytes of bodies counted against the budget, across requests in flight
        self.clients: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        if self.clients[client] >= self.per_client:
            message = (
                f"{self.clients[client]} requests from {client} are in flight, the limit "
                "(server.max_requests_per_client); try again shortly"
            )
            await _refuse(scope, receive, send, BadRequestError(message, 503, "ProviderBusyError"))
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and self.held + int(declared) > self.max_bytes:
            await _refuse(scope, receive, send, BadRequestError(self._full(int(declared)), 503, "ProviderBusyError"))
            return
        counted, body_done = 0, False

        async def bounded_receive() -> Message:
            nonlocal counted, body_done
            if body_done:  # after the body: waiting for the client to go away, as a streamed answer does
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                raise BadRequestError(f"no bytes of the request body for {self.body_timeout_s:g}s "
                                      "(server.body_timeout_s)", 408, "RequestTimeout") from None  # fmt: skip
            size = len(message.get("body", b"")) if message["type"] == "http.request" else 0
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if size:
                if self.held + size > self.max_bytes:
                    raise BadRequestError(self._full(size), 503, "ProviderBusyError")
                self.held += size
                counted += size
                if self.gauge is not None:
                    self.gauge.set(self.held)
            return message

        self.clients[client] += 1
        try:
            await self.app(scope, bounded_receive, send)
        except ClientDisconnect:
            logger.debug("%s %s: the client went away before its answer", scope.get("method"), scope.get("path"))
        finally:
            self.held -= counted
            if self.gauge is not None and counted:
                self.gauge.set(self.held)
            self.clients[client] -= 1
            if not self.clients[client]:
                del self.clients[client]

    def _full(self, wanted: int) -> str:
        return (
            f"the host holds {self.held / 2**20:.1f} MiB of request bodies in flight; {wanted / 2**20:.1f} MiB more "
            f"would pass its {self.max_bytes >> 20} MiB limit (server.max_request_bodies_mb); try again shortly"
        )


async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: BadRequestError) -> None:
    body = bad_request(refusal.message, type_name=refusal.type_name)
    await refused(body, refusal.status)(scope, receive, send)
