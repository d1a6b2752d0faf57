"""The routes of the APIs OGX removed, served by a hub (``hostel.bridge._hub``) to the processes of a multi-process
server, and the server processes' side: routes that pass each request on to the hub as it came.

A hub for a hostel run config (``hostel.bridge.removed``) serves the same routes ``hostel run`` serves for these
APIs (``hostel.gateway.resources``), with its host's tables, on a Unix socket in its private directory; a server
process mounts, for each of those routes, one with the same path and methods whose handler sends the request
(method, path, query, headers, body) to the hub and streams the hub's response back. The tables are therefore
one, whichever server process a client reaches. Every request carries the hub's token.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hostel.bridge._shared import SharedHost
from hostel.gateway.resources import ResourceHost, resource_routes, routes_for
from hostel.gateway.serving import SignalFreeServer

TOKEN_HEADER = "x-hostel-hub-token"
PROCESS_HEADER = "x-hostel-server-process"  # which server process passed the request on (the hub counts them)
# Request headers that describe the connection to the server, not the request.
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive", TOKEN_HEADER})


class _TokenCheck:
    """Refuses every request that does not carry the hub's token."""

    def __init__(self, app: ASGIApp, token: str, count: Callable[[str], None]) -> None:
        self._app = app
        self._token = token.encode()
        self._count = count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or ())
            if not hmac.compare_digest(headers.get(TOKEN_HEADER.encode(), b""), self._token):
                await JSONResponse({"error": {"message": "missing or wrong hub token"}}, 401)(scope, receive, send)
                return
            self._count(headers.get(PROCESS_HEADER.encode(), b"").decode(errors="replace"))
        await self._app(scope, receive, send)


async def serve_routes(
    host: ResourceHost, max_body: int, socket: Path, token: str, count: Callable[[str], None]
) -> Callable[[], Awaitable[None]]:
    """Serve the resource routes of ``host`` on ``socket`` (``count``: told which server process each request came
    through); returns what stops serving."""
    import uvicorn

    app = _TokenCheck(Starlette(routes=resource_routes(host, max_body)), token, count)
    server = SignalFreeServer(
        uvicorn.Config(app, uds=str(socket), log_level="warning", lifespan="off", timeout_graceful_shutdown=5)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError(f"the hub's HTTP server on {socket} stopped before it started")
        await asyncio.sleep(0.02)
    socket.chmod(0o600)

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop


class HubRoutes:
    """A server process's routes for the removed APIs, each passing the request on to the hub (attached again first
    if it is gone)."""

    def __init__(self, hub: SharedHost) -> None:
        self._hub = hub
        socket, _ = hub.http_address()
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket)), base_url="http://hub", timeout=None
        )

    def routes(self, api: str) -> list[Route]:
        """Routes with the paths and methods of ``api``'s (``routes_for``), each passing the request on."""
        return [Route(r.path, self._pass_on, methods=sorted(r.methods or ())) for r in routes_for(api, _NoHost(), 0)]

    async def _pass_on(self, request: Request) -> Response:
        await self._hub.ensure()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        headers[TOKEN_HEADER] = self._hub.http_address()[1]
        headers[PROCESS_HEADER] = self._hub.key
        sent = self._client.build_request(
            request.method, request.url.path, params=request.url.query, headers=headers, content=await request.body()
        )
        reply = await self._client.send(sent, stream=True)
        passed = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_HEADERS}

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in reply.aiter_raw():
                    yield chunk
            finally:
                await reply.aclose()

        return StreamingResponse(body(), status_code=reply.status_code, headers=passed)

    async def close(self) -> None:
        """Close the connections to the hub."""
        await self._client.aclose()


class _NoHost:
    """Stands for a host where only the routes' paths and methods are wanted."""

    registry: Any = None

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError
