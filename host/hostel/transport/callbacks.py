"""The host's callback service: how providers call the APIs they depend on (their ``deps``).

It listens on a Unix socket in the host's private 0700 directory. Each worker gets its own token and
may call only the APIs it declared; anything else is answered with ``PermissionError`` on its side.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc

from hostel import _telemetry
from hostel.errors import HostelError
from hostel.transport.grpc_errors import to_remote
from hostel_sdk import _blobs, _received, codec
from hostel_sdk import _messages as pb
from hostel_sdk._exposure import callable_name
from hostel_sdk._llama_stack import CALL_KEY, USER_KEY
from hostel_sdk._service import error_reply
from hostel_sdk._wire import (
    MODEL_STORE_API,
    SHIELD_STORE_API,
    TOKEN_METADATA,
    TokenCheck,
    add_tcp_port,
    channel_options,
    host_handler,
)

logger = logging.getLogger(__name__)


class ApiHandle(Protocol):
    """One API as ``Host.api()`` gives it: ``await handle.invoke(method, args, kwargs)``, or
    ``await handle.method(*args, **kwargs)`` (a provider router, the host's own table, a server's router)."""

    async def invoke(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call ``method`` of this API, routed as the API routes."""
        ...

    def __getattr__(self, name: str) -> Any:
        """``handle.method``: an async callable that invokes ``method``."""
        ...


class NamedMethods:
    """``self.method(*args, **kwargs)`` as ``self.invoke("method", args, kwargs)``, for ``ApiHandle``s."""

    async def invoke(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self.invoke(name, args, kwargs)

        method.__name__ = name
        return method


class ApiSource(Protocol):
    """What serves the callbacks (the host)."""

    def api(self, api: str, *, timeout: float | None = None, provider_data: Any = None) -> ApiHandle:
        """A router for ``api``: ``await router.invoke(method, args, kwargs)`` calls one of its methods."""
        ...

    async def model_record(self, model_id: str) -> dict[str, Any] | None:
        """A row of the models table as Llama Stack's ``Model`` fields, or ``None``."""
        ...

    async def shield_record(self, shield_id: str) -> dict[str, Any] | None:
        """A row of the shields table as Llama Stack's ``Shield`` fields, or ``None``."""
        ...


@dataclass
class Grant:
    """What one worker may call, and how many of its callbacks may be in flight at once."""

    provider_id: str
    apis: frozenset[str]
    max_in_flight: int
    in_flight: int = 0
    # Blobs in the results of its calls (a file's content), waiting for its ReadBlob; blobs in their arguments.
    outgoing: _blobs.Parked = field(default_factory=_blobs.Parked)
    # The host's calls it is serving: the key each carries (CALL_KEY) -> the user who made it (None: nobody).
    calls: dict[str, Any] = field(default_factory=dict)
    inbox: _received.Inbox = field(default_factory=_received.Inbox)
    blob_ids: Iterator[int] = field(default_factory=_blobs.ids)


def _nothing() -> None:
    pass


def _bound_user(provider_data: Any, grant: Grant) -> Any:
    """A worker's provider data with the user it may speak for: the one of the host's call it names, if that call
    is still being served; a user the worker wrote in itself is dropped."""
    if not isinstance(provider_data, dict):
        return provider_data
    data = {k: v for k, v in provider_data.items() if k not in (USER_KEY, CALL_KEY)}
    user = grant.calls.get(str(provider_data.get(CALL_KEY)))
    if user is not None:
        data[USER_KEY] = user
    return data


def _remote_reply(kind: int, type_name: str, message: str, tb: str = "") -> pb.CallReply:
    return pb.CallReply(error=pb.RemoteError(kind=kind, type_name=type_name, message=message, traceback=tb))


class CallbackServer:
    """Serves ``hostel.v1.Host`` to the workers."""

    def __init__(self, source: ApiSource, socket_path: Path, *, max_message_bytes: int) -> None:
        self.socket_path = socket_path
        self._source = source
        self._max = max_message_bytes
        self._grants: dict[str, Grant] = {}
        self._server: grpc.aio.Server | None = None
        self._tcp_server: grpc.aio.Server | None = None
        self._tcp_target = ""

    def grant(self, provider_id: str, apis: Iterable[str], *, max_in_flight: int = 256) -> str:
        """A new token for ``provider_id`` allowing exactly ``apis``, ``max_in_flight`` calls at a time."""
        token = secrets.token_urlsafe(32)
        self._grants[token] = Grant(provider_id, frozenset(apis), max_in_flight)
        return token

    def bind_call(self, token: str, provider_data: Any) -> tuple[Any, Callable[[], None]]:
        """A call to the worker holding ``token``: its provider data with a key for the call (``CALL_KEY``), and
        what to run when the call is over. While it lasts, the worker's deps calls that carry the key carry the
        call's user (``__authenticated_user``), whatever the worker says; without a live key, no user."""
        grant = self._grants.get(token)
        if grant is None:
            return provider_data, _nothing
        key = secrets.token_urlsafe(16)
        grant.calls[key] = provider_data.get(USER_KEY) if isinstance(provider_data, dict) else None
        data = {**(provider_data if isinstance(provider_data, dict) else {}), CALL_KEY: key}
        return data, lambda: grant.calls.pop(key, None) and None

    def revoke(self, token: str) -> None:
        """Forget a token (its worker is gone)."""
        grant = self._grants.pop(token, None)
        if grant is not None:
            grant.outgoing.clear()

    def _grant(self, context: grpc.aio.ServicerContext[Any, Any]) -> Grant | None:
        metadata = dict(context.invocation_metadata() or ())
        return self._grants.get(str(metadata.get(TOKEN_METADATA, "")))

    async def send_blob(
        self, requests: AsyncIterator[pb.BlobChunk], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.BlobReceipt:
        """Host.SendBlob: bytes or a file among the arguments of one of this worker's deps calls."""
        grant = self._grant(context)
        if grant is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "unknown or missing worker token")
            return pb.BlobReceipt()
        return pb.BlobReceipt(received=await grant.inbox.receive(requests))

    async def read_blob(
        self, request: pb.BlobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.BlobChunk]:
        """Host.ReadBlob: a blob in the result of one of this worker's deps calls, once."""
        grant = self._grant(context)
        source = grant.outgoing.take(request.id) if grant is not None else None
        if source is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no blob {request.id}: read already, or not within 60 s")
            return
        async for chunk in _blobs.send_chunks(source, context):
            yield chunk

    def _known(self, token: bytes) -> bool:
        return any(hmac.compare_digest(token, known.encode()) for known in self._grants)

    def _new_server(self, *, local: bool = True) -> grpc.aio.Server:
        # An unknown token is refused before the request is read (it may be up to max_message_mb).
        server = grpc.aio.server(
            options=channel_options(self._max, local=local), interceptors=[TokenCheck(self._known)]
        )
        server.add_generic_rpc_handlers([host_handler(self.call, self)])
        return server

    async def start(self) -> None:
        """Listen on the socket."""
        server = self._new_server()
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        self._server = server

    async def listen_tcp(self, host: str, tls: dict[str, str] | None) -> str:
        """Also listen on TCP at ``host`` (a port chosen by the OS), for workers on other machines; the target.

        A second server, so the Unix socket keeps serving local workers as before. Tokens guard both; with
        ``tls`` the TCP side is mutual TLS.
        """
        if self._tcp_server is None:
            server = self._new_server(local=False)
            port = add_tcp_port(server, f"{host}:0", tls)
            await server.start()
            self._tcp_server, self._tcp_target = server, f"{host}:{port}"
        return self._tcp_target

    async def stop(self) -> None:
        """Stop listening (in-flight callbacks are cancelled)."""
        for server in (self._server, self._tcp_server):
            if server is not None:
                await server.stop(0)
        self._server = self._tcp_server = None

    async def _store(self, request: pb.HostCallRequest) -> pb.CallReply:
        """The read-only routing tables a stack injects: ``get_model``/``has_model``, ``get_shield``/``has_shield``."""
        kind = "model" if request.api == MODEL_STORE_API else "shield"
        try:
            args = codec.loads(request.args_json) or []
            kwargs = codec.loads(request.kwargs_json) or {}
            identifier = kwargs.get("identifier", kwargs.get(f"{kind}_id", args[0] if args else None))
        except ValueError as exc:
            return error_reply(exc, pb.ERROR_KIND_BAD_ARGUMENTS)
        lookup = self._source.model_record if kind == "model" else self._source.shield_record
        record = await lookup(str(identifier))
        if request.method == f"has_{kind}":
            return pb.CallReply(value_json=codec.dumps(record is not None))
        if request.method == f"get_{kind}":
            if record is None:
                return _remote_reply(pb.ERROR_KIND_PROVIDER_RAISED, "ValueError", f"{kind} {identifier!r} not found")
            return pb.CallReply(value_json=codec.dumps(record))
        return _remote_reply(pb.ERROR_KIND_NO_SUCH_METHOD, "AttributeError", f"{kind}_store has no {request.method!r}")

    async def call(
        self, request: pb.HostCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CallReply]:
        """Host.Call: check the token and the API, then route like ``host.api(api).method(...)``."""
        grant = self._grant(context)
        if grant is None:
            yield _remote_reply(pb.ERROR_KIND_PERMISSION_DENIED, "PermissionError", "unknown or missing worker token")
            return
        if request.api in (MODEL_STORE_API, SHIELD_STORE_API):
            yield await self._store(request)
            return
        if request.api not in grant.apis:
            allowed = ", ".join(sorted(grant.apis)) or "none"
            message = (
                f"provider {grant.provider_id!r} called API {request.api!r}, which it did not declare; "
                f"it may call only its api_dependencies: {allowed}"
            )
            logger.warning("%s", message)
            yield _remote_reply(pb.ERROR_KIND_PERMISSION_DENIED, "PermissionError", message)
            return
        if not callable_name(request.method):
            message = f"{request.method!r} is not an API method {grant.provider_id!r} may call on {request.api!r}"
            logger.warning("%s", message)
            yield _remote_reply(pb.ERROR_KIND_PERMISSION_DENIED, "PermissionError", message)
            return
        if grant.in_flight >= grant.max_in_flight:
            yield _remote_reply(
                pb.ERROR_KIND_HOST_ERROR,
                "hostel.errors.ProviderBusyError",
                f"provider {grant.provider_id!r} has {grant.in_flight} calls to its dependencies in flight, "
                "its limit (limits.max_concurrent_calls); try again shortly",
            )
            return
        grant.in_flight += 1
        try:
            async for reply in self._dispatch(request, context, grant):
                yield reply
        finally:
            grant.in_flight -= 1

    async def _dispatch(
        self, request: pb.HostCallRequest, context: grpc.aio.ServicerContext[Any, Any], grant: Grant
    ) -> AsyncIterator[pb.CallReply]:
        """Route one permitted callback like ``host.api(api).method(...)``, by routing, never by attribute."""
        try:
            args = codec.loads(request.args_json) or []
            kwargs = codec.loads(request.kwargs_json) or {}
            provider_data = _bound_user(codec.loads(request.provider_data_json), grant)
        except ValueError as exc:
            yield error_reply(exc, pb.ERROR_KIND_BAD_ARGUMENTS)
            return
        if codec.has_models(request.args_json) or codec.has_models(request.kwargs_json):
            args, kwargs = codec.untag(args), codec.untag(kwargs)
        blobs: list[int] = []
        if _blobs.has_markers(request.args_json) or _blobs.has_markers(request.kwargs_json):
            args, kwargs = _received.received(args, grant.inbox, blobs), _received.received(kwargs, grant.inbox, blobs)
        try:
            with _telemetry.extracted(request.trace_context):  # the host's call span: a child of the provider's
                router = self._source.api(request.api, timeout=context.time_remaining(), provider_data=provider_data)
                result = await router.invoke(request.method, args, kwargs)
            if not hasattr(result, "__aiter__"):
                outbox = _blobs.Outbox(grant.blob_ids)
                reply = pb.CallReply(value_json=codec.dumps(result, blobs=outbox))
                grant.outgoing.park(outbox.sources)
                yield reply
                return
            yield pb.CallReply(stream_begin=pb.StreamBegin())
            async with contextlib.aclosing(result):
                async for item in result:
                    yield pb.CallReply(items=pb.StreamItems(items_json=[codec.dumps(item)]))
        except HostelError as exc:
            yield pb.CallReply(error=to_remote(exc))
        except Exception as exc:  # noqa: BLE001 - an API served in process (the bridge's server) raised: pass it on
            yield error_reply(exc, pb.ERROR_KIND_PROVIDER_RAISED)
        finally:
            for blob_id in blobs:
                grant.inbox.drop(blob_id)
