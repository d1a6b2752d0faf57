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
import os
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hostel import __version__
from hostel.config import CorsSettings
from hostel.errors import ConfigError, HostelError, RoutingError
from hostel.gateway.admin import refuse_without_token
from hostel.gateway.auth import Authenticator
from hostel.gateway.bodies import BodyBudget
from hostel.gateway.guard import LOOPBACK_NAMES, Guard, is_loopback
from hostel.gateway.health import ProviderHealth
from hostel.gateway.http_errors import bad_request, error_body, internal_error_body
from hostel.gateway.metrics import Metrics
from hostel.gateway.requests import (
    PROVIDER_DATA_HEADER,
    TIMEOUT_HEADER,
    BadRequestError,
    call_timeout,
    error_response,
    json_body,
    json_response,
    read_provider_data,
    refused,
    reply,
)
from hostel.gateway.resources import resource_routes
from hostel.gateway.shapes import SERVING, provider_info
from hostel.host import Host
from hostel.supervise.status import ProviderStatus

logger = logging.getLogger(__name__)

_OPENAI_METHODS = {
    "/chat/completions": "openai_chat_completion",
    "/completions": "openai_completion",
    "/embeddings": "openai_embeddings",
}
# OpenAI-compatible routes live under /v1 (the openai client) and /v1/openai/v1 (llama-stack-client).
_OPENAI_PREFIXES = ("/v1", "/v1/openai/v1")


class Gateway:
    """The routes, bound to one host."""

    def __init__(self, host: Host, admin_token: str | None = None) -> None:
        self.host = host
        self.admin_token = admin_token
        self.metrics = Metrics(host)
        self.max_body = host.config.hostel.max_message_mb * 2**20
        self.provider_health = ProviderHealth(host.serving_channel)

    async def health(self, request: Request) -> Response:
        states = {s.provider_id: s.state for s in self.host.status()}
        if all(state in SERVING for state in states.values()):
            return json_response({"status": "OK"})
        return json_response({"status": "Error", "providers": states}, 503)

    async def _infos(self, statuses: list[ProviderStatus]) -> list[dict[str, Any]]:
        health = await self.provider_health.reports(s.provider_id for s in statuses)
        return [provider_info(s, self.host.provider_config(s.provider_id), health[s.provider_id]) for s in statuses]

    async def providers(self, request: Request) -> Response:
        return json_response({"data": await self._infos(self.host.status(usage=True))})

    async def provider(self, request: Request) -> Response:
        provider_id = request.path_params["provider_id"]
        for status in self.host.status(usage=True):
            if status.provider_id == provider_id:
                return json_response((await self._infos([status]))[0])
        return error_response(RoutingError(f"no provider {provider_id!r}", provider_id=provider_id))

    async def status(self, request: Request) -> Response:
        if (refusal := refuse_without_token(request, self.admin_token)) is not None:
            return refusal
        usage = self.host.own_usage()
        return json_response(
            {
                "host": {"pid": os.getpid(), "version": __version__, **(dataclasses.asdict(usage) if usage else {})},
                "providers": [s.to_dict() for s in self.host.status(usage=True)],
            }
        )

    async def version(self, request: Request) -> Response:
        return json_response({"version": __version__})

    async def routes(self, request: Request) -> Response:
        data = [
            {"route": route.path, "method": method, "provider_types": []}
            for route in request.app.routes
            if isinstance(route, Route)
            for method in sorted(route.methods or ())
            if method != "HEAD"
        ]
        return json_response({"data": data})

    async def restart(self, request: Request) -> Response:
        if (refusal := refuse_without_token(request, self.admin_token)) is not None:
            return refusal
        provider_id = request.path_params["provider_id"]
        try:
            return json_response((await self.host.restart(provider_id)).to_dict())
        except HostelError as exc:
            return error_response(exc)

    async def operate(self, request: Request) -> Response:
        if (refusal := refuse_without_token(request, self.admin_token)) is not None:
            return refusal
        provider_id, action = request.path_params["provider_id"], request.path_params["action"]
        operations = {"restart": self.host.restart, "stop": self.host.stop_provider, "start": self.host.start_provider}
        if action not in operations:
            return refused(
                bad_request(f"no operation {action!r}; use restart, stop or start", type_name="NotFound"), 404
            )
        try:
            return json_response((await operations[action](provider_id)).to_dict())
        except HostelError as exc:
            return error_response(exc)

    async def reload(self, request: Request) -> Response:
        if (refusal := refuse_without_token(request, self.admin_token)) is not None:
            return refusal
        try:
            report = await self.host.reload()
        except ConfigError as exc:  # the config file it re-read is the operator's to fix: nothing changed
            logger.error("reload refused, nothing changed: %s", exc)
            return refused(error_body(exc), 400)
        except HostelError as exc:
            logger.error("reload failed: %s", exc)
            return error_response(exc)
        if report.ok:
            return json_response(report.to_dict())
        failures = "; ".join(f"{pid}: {why}" for pid, why in report.failed.items())
        body = bad_request(f"reload applied in part; failed: {failures}", type_name="ReloadFailed")
        return json_response({**body, "reload": report.to_dict()}, 500)

    async def call_provider(self, request: Request) -> Response:
        provider_id, method = request.path_params["provider_id"], request.path_params["method"]
        try:
            kwargs = await json_body(request, self.max_body)
            provider_data = read_provider_data(request)
            if method.startswith("_"):
                raise BadRequestError(f"{method!r} is not a public method")
            # Straight to the host, not through a proxy: any argument name (``method``, ``self``) is the provider's.
            result = await self.host.call(
                provider_id, method, (), kwargs, timeout=call_timeout(request), provider_data=provider_data
            )
            return reply(result)
        except BadRequestError as exc:
            return refused(bad_request(exc.message, type_name=exc.type_name, provider_id=provider_id), exc.status)
        except HostelError as exc:
            return error_response(exc)

    async def openai(self, request: Request) -> Response:
        method = _OPENAI_METHODS[request.url.path.removeprefix("/v1/openai/v1").removeprefix("/v1")]
        try:
            body = await json_body(request, self.max_body)
            if not isinstance(body.get("model"), str):
                raise BadRequestError("'model' is required: one of GET /v1/models")
            router = self.host.api(
                "inference", provider_data=read_provider_data(request), timeout=call_timeout(request)
            )
            # OpenAI ends a stream with "data: [DONE]"; llama-stack-client (under /v1/openai/v1) chokes on it.
            done_marker = not request.url.path.startswith("/v1/openai/")
            return reply(await router.invoke(method, (), body), openai=done_marker)
        except BadRequestError as exc:
            return refused(bad_request(exc.message, type_name=exc.type_name), exc.status)
        except HostelError as exc:
            return error_response(exc)

    async def models(self, request: Request) -> Response:
        data = [
            {"id": m["identifier"], "object": "model", "created": 0, "owned_by": m["provider_id"], **m}
            for m in self.host.models("inference")
        ]
        return json_response({"object": "list", "data": data})

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "NotFound" if exc.status_code == 404 else "MethodNotAllowed" if exc.status_code == 405 else "HTTPError"
    return json_response(
        bad_request(f"{request.method} {request.url.path}: {exc.detail}", type_name=kind), exc.status_code
    )


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
                await json_response(internal_error_body(exc), 500)(scope, receive, send)


def create_app(
    host: Host, *, bind: str = "127.0.0.1", authenticator: Authenticator | None = None, admin_token: str | None = None
) -> Starlette:
    """The ASGI app for ``host`` (which the caller starts and stops), as ``server:`` says, listening on ``bind``;
    ``admin_token``: what the ``/v1/hostel/*`` routes need (``hostel.gateway.admin``)."""
    gateway = Gateway(host, admin_token)
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
        *resource_routes(host, gateway.max_body),
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
        Middleware(
            BodyBudget,
            max_bytes=server.max_request_bodies_mb * 2**20,
            per_client=server.max_requests_per_client,
            body_timeout_s=server.body_timeout_s,
            gauge=gateway.metrics.body_bytes,
        ),
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
