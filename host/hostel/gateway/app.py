"""The HTTP gateway of ``hostel run``: a Starlette app over a ``Host`` (served by ``hostel.gateway.serving``).

Routes (docs/http.md): health, version, routes, providers (Llama Stack's shapes) and hostel's status,
``POST /v1/providers/{id}/{method}``, the operator's ``/v1/hostel/reload`` and
``/v1/hostel/providers/{id}/{restart,stop,start}``, the OpenAI-compatible ``chat/completions``,
``completions``, ``embeddings`` and ``models`` (routed by the models table to the inference provider's
``openai_*`` methods), and ``/metrics``. Streams are ``text/event-stream``. ``hostel.gateway.guard`` decides
first which requests reach a route.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hostel import __version__
from hostel._http_errors import bad_request, error_body, headers_for, internal_error_body, status_for
from hostel.config import CorsSettings
from hostel.errors import ConfigError, HostelError, RoutingError
from hostel.gateway.auth import USER_KEY, Authenticator
from hostel.gateway.guard import LOOPBACK_NAMES, SCOPE_USER, Guard, is_loopback
from hostel.gateway.metrics import Metrics
from hostel.gateway.shapes import SERVING, provider_info
from hostel.host import Host
from hostel.supervisor import ProviderStatus
from hostel_sdk import codec

logger = logging.getLogger(__name__)

PROVIDER_DATA_HEADER = "X-LlamaStack-Provider-Data"
TIMEOUT_HEADER = "X-Hostel-Timeout"  # seconds; default: the config's call_timeout_s
_OPENAI_METHODS = {
    "/chat/completions": "openai_chat_completion",
    "/completions": "openai_completion",
    "/embeddings": "openai_embeddings",
}
# OpenAI-compatible routes live under /v1 (the openai client) and /v1/openai/v1 (llama-stack-client).
_OPENAI_PREFIXES = ("/v1", "/v1/openai/v1")


class _BadRequestError(Exception):
    def __init__(self, message: str, status: int = 400, type_name: str = "BadRequest") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type_name = type_name


def _json(data: Any, status: int = 200) -> Response:
    return Response(codec.dumps(data), status_code=status, media_type="application/json")


def _refused(body: dict[str, Any], status: int) -> Response:
    response = _json(body, status)
    if status == 413:  # the rest of the body is never read: end the connection rather than drain it
        response.headers["Connection"] = "close"
    return response


def _error(exc: BaseException) -> Response:
    response = _json(error_body(exc), status_for(exc))
    response.headers.update(headers_for(exc))
    return response


def _too_large(size: str, limit: int) -> _BadRequestError:
    return _BadRequestError(
        f"request body is {size}, over the {limit >> 20} MiB limit (hostel.max_message_mb); send less",
        413,
        "PayloadTooLargeError",
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) from its Content-Length before reading, or as soon as a chunked one passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _BadRequestError(f"Content-Length must be a number of bytes, got {declared!r}")
        if int(declared) > limit:
            raise _too_large(f"{int(declared) / 2**20:.1f} MiB", limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large("more than that", limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, limit: int) -> dict[str, Any]:
    raw = await _read_body(request, limit)
    try:
        body = codec.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise _BadRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequestError(f"request body must be a JSON object of arguments, got {type(body).__name__}")
    return body


def _timeout(request: Request) -> float | None:
    """The call's timeout from ``X-Hostel-Timeout`` (the host caps it at ``call_timeout_s``)."""
    header = request.headers.get(TIMEOUT_HEADER)
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise _BadRequestError(f"{TIMEOUT_HEADER} must be a finite, positive number of seconds, got {header!r}")
    return value


def _provider_data(request: Request) -> Any:
    """The call's provider data: the header's, with the authenticated user where Llama Stack keeps it (a
    client's own ``__authenticated_user`` key is dropped: nobody may claim to be someone)."""
    header = request.headers.get(PROVIDER_DATA_HEADER)
    data = None
    if header:
        try:
            data = codec.loads(header.encode())
        except ValueError as exc:
            raise _BadRequestError(f"{PROVIDER_DATA_HEADER} header is not valid JSON: {exc}") from None
        if isinstance(data, dict):
            data.pop(USER_KEY, None)
    user = request.scope.get(SCOPE_USER)
    if user is not None:
        data = {**(data if isinstance(data, dict) else {}), USER_KEY: user.to_dict()}
    return data


async def _events(stream: Any, *, openai: bool) -> AsyncIterator[bytes]:
    """Server-sent events; a client that goes away cancels this, which closes the provider's generator."""
    try:
        async for item in stream:
            yield b"data: " + codec.dumps(item) + b"\n\n"
        if openai:
            yield b"data: [DONE]\n\n"
    except HostelError as exc:
        yield b"event: error\ndata: " + codec.dumps(error_body(exc)) + b"\n\n"
    except Exception as exc:  # the status is sent already: end the stream with the error, logged once
        logger.exception("unexpected error while streaming a reply")
        yield b"event: error\ndata: " + codec.dumps(internal_error_body(exc)) + b"\n\n"
    finally:
        await stream.aclose()


def _reply(result: Any, *, openai: bool = False) -> Response:
    if hasattr(result, "__aiter__"):
        return StreamingResponse(_events(result, openai=openai), media_type="text/event-stream")
    return _json(result)


class Gateway:
    """The routes, bound to one host."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.metrics = Metrics(host)
        self.max_body = host.config.hostel.max_message_mb * 2**20

    async def health(self, request: Request) -> Response:
        states = {s.provider_id: s.state for s in self.host.status()}
        if all(state in SERVING for state in states.values()):
            return _json({"status": "OK"})
        return _json({"status": "Error", "providers": states}, 503)

    def _info(self, status: ProviderStatus) -> dict[str, Any]:
        return provider_info(status, self.host.provider_config(status.provider_id))

    async def providers(self, request: Request) -> Response:
        return _json({"data": [self._info(s) for s in self.host.status(usage=True)]})

    async def provider(self, request: Request) -> Response:
        provider_id = request.path_params["provider_id"]
        for status in self.host.status(usage=True):
            if status.provider_id == provider_id:
                return _json(self._info(status))
        return _error(RoutingError(f"no provider {provider_id!r}", provider_id=provider_id))

    async def status(self, request: Request) -> Response:
        usage = self.host.own_usage()
        return _json(
            {
                "host": {"pid": os.getpid(), "version": __version__, **(dataclasses.asdict(usage) if usage else {})},
                "providers": [s.to_dict() for s in self.host.status(usage=True)],
            }
        )

    async def version(self, request: Request) -> Response:
        return _json({"version": __version__})

    async def routes(self, request: Request) -> Response:
        data = [
            {"route": route.path, "method": method, "provider_types": []}
            for route in request.app.routes
            if isinstance(route, Route)
            for method in sorted(route.methods or ())
            if method != "HEAD"
        ]
        return _json({"data": data})

    async def restart(self, request: Request) -> Response:
        provider_id = request.path_params["provider_id"]
        try:
            return _json((await self.host.restart(provider_id)).to_dict())
        except HostelError as exc:
            return _error(exc)

    async def operate(self, request: Request) -> Response:
        provider_id, action = request.path_params["provider_id"], request.path_params["action"]
        operations = {"restart": self.host.restart, "stop": self.host.stop_provider, "start": self.host.start_provider}
        if action not in operations:
            return _refused(
                bad_request(f"no operation {action!r}; use restart, stop or start", type_name="NotFound"), 404
            )
        try:
            return _json((await operations[action](provider_id)).to_dict())
        except HostelError as exc:
            return _error(exc)

    async def reload(self, request: Request) -> Response:
        try:
            report = await self.host.reload()
        except ConfigError as exc:  # the config file it re-read is the operator's to fix: nothing changed
            return _refused(error_body(exc), 400)
        except HostelError as exc:
            return _error(exc)
        if report.ok:
            return _json(report.to_dict())
        failures = "; ".join(f"{pid}: {why}" for pid, why in report.failed.items())
        body = bad_request(f"reload applied in part; failed: {failures}", type_name="ReloadFailed")
        return _json({**body, "reload": report.to_dict()}, 500)

    async def call_provider(self, request: Request) -> Response:
        provider_id, method = request.path_params["provider_id"], request.path_params["method"]
        try:
            kwargs = await _body(request, self.max_body)
            provider_data = _provider_data(request)
            if method.startswith("_"):
                raise _BadRequestError(f"{method!r} is not a public method")
            # Straight to the host, not through a proxy: any argument name (``method``, ``self``) is the provider's.
            result = await self.host.call(
                provider_id, method, (), kwargs, timeout=_timeout(request), provider_data=provider_data
            )
            return _reply(result)
        except _BadRequestError as exc:
            return _refused(bad_request(exc.message, type_name=exc.type_name, provider_id=provider_id), exc.status)
        except HostelError as exc:
            return _error(exc)

    async def openai(self, request: Request) -> Response:
        method = _OPENAI_METHODS[request.url.path.removeprefix("/v1/openai/v1").removeprefix("/v1")]
        try:
            body = await _body(request, self.max_body)
            if not isinstance(body.get("model"), str):
                raise _BadRequestError("'model' is required: one of GET /v1/models")
            router = self.host.api("inference", provider_data=_provider_data(request), timeout=_timeout(request))
            # OpenAI ends a stream with "data: [DONE]"; llama-stack-client (under /v1/openai/v1) chokes on it.
            done_marker = not request.url.path.startswith("/v1/openai/")
            return _reply(await router.invoke(method, (), body), openai=done_marker)
        except _BadRequestError as exc:
            return _refused(bad_request(exc.message, type_name=exc.type_name), exc.status)
        except HostelError as exc:
            return _error(exc)

    async def models(self, request: Request) -> Response:
        data = [
            {"id": m["identifier"], "object": "model", "created": 0, "owned_by": m["provider_id"], **m}
            for m in self.host.models("inference")
        ]
        return _json({"object": "list", "data": data})

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "NotFound" if exc.status_code == 404 else "MethodNotAllowed" if exc.status_code == 405 else "HTTPError"
    return _json(bad_request(f"{request.method} {request.url.path}: {exc.detail}", type_name=kind), exc.status_code)


class _CatchAll:
    """Any exception a route did not expect: logged once, answered with the JSON error body and 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # the one place unexpected errors become an HTTP answer
            logger.exception("unexpected error serving %s %s", scope.get("method"), scope.get("path"))
            if not started and scope["type"] == "http":
                await _json(internal_error_body(exc), 500)(scope, receive, send)


def create_app(host: Host, *, bind: str = "127.0.0.1", authenticator: Authenticator | None = None) -> Starlette:
    """The ASGI app for ``host`` (which the caller starts and stops), as ``server:`` says, listening on ``bind``."""
    gateway = Gateway(host)
    server = host.config.server
    routes = [
        Route("/v1/health", gateway.health, methods=["GET"]),
        Route("/v1/version", gateway.version, methods=["GET"]),
        Route("/v1/inspect/routes", gateway.routes, methods=["GET"]),
        Route("/v1/hostel/status", gateway.status, methods=["GET"]),
        Route("/v1/hostel/reload", gateway.reload, methods=["POST"]),
        Route("/v1/hostel/providers/{provider_id}/{action}", gateway.operate, methods=["POST"]),
        Route("/v1/providers", gateway.providers, methods=["GET"]),
        Route("/v1/providers/{provider_id}", gateway.provider, methods=["GET"]),
        # Before the call route, so it shadows a provider method named "restart" over HTTP (the Python API and
        # `hostel call` still reach one).
        Route("/v1/providers/{provider_id}/restart", gateway.restart, methods=["POST"]),
        Route("/v1/providers/{provider_id}/{method}", gateway.call_provider, methods=["POST"]),
        *(
            Route(prefix + path, gateway.openai, methods=["POST"])
            for prefix in _OPENAI_PREFIXES
            for path in _OPENAI_METHODS
        ),
        *(Route(f"{prefix}/models", gateway.models, methods=["GET"]) for prefix in _OPENAI_PREFIXES),
        Route("/metrics", gateway.prometheus, methods=["GET"]),
    ]
    cors = CorsSettings(**_DEV_CORS) if server.cors is True else server.cors or None
    if server.allowed_hosts:
        hosts: list[str] | None = [*LOOPBACK_NAMES, *server.allowed_hosts]
    else:  # on loopback only loopback names (no DNS rebinding); elsewhere auth guards it, any name will do
        hosts = list(LOOPBACK_NAMES) if is_loopback(bind) else None
    middleware = [
        *(
            [Middleware(CORSMiddleware, **cors.model_dump(exclude={"max_age"}), max_age=cors.max_age)]
            if isinstance(cors, CorsSettings)
            else []
        ),
        Middleware(
            Guard,
            hosts=hosts,
            origins=cors.allow_origins if isinstance(cors, CorsSettings) else (),
            origin_regex=cors.allow_origin_regex if isinstance(cors, CorsSettings) else None,
            authenticator=authenticator,
        ),
        Middleware(_CatchAll),
    ]
    if host.traces:
        middleware[:0] = _tracing()
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error}, middleware=middleware)


def _tracing() -> list[Middleware]:
    """OpenTelemetry's ASGI middleware (a server span per request, its context from the caller's ``traceparent``),
    if installed."""
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        logger.warning("tracing is on, but opentelemetry-instrumentation-asgi is missing: no HTTP server spans")
        return []
    return [Middleware(OpenTelemetryMiddleware, excluded_urls="v1/health,metrics", exclude_spans=["receive", "send"])]


# server.cors: true, as Llama Stack reads it: pages from http(s)://localhost on any port, for development.
_DEV_CORS: dict[str, Any] = {
    "allow_origin_regex": r"https?://localhost:\d+",
    "allow_methods": ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
    "allow_headers": ["Content-Type", "Authorization", "X-Requested-With"],
}


__all__ = ["PROVIDER_DATA_HEADER", "TIMEOUT_HEADER", "create_app"]
