"""The object a Llama Stack server holds for a bridged provider: every protocol method, forwarded.

The class is generated per API from the server's own protocol, so the server's protocol-compliance
check finds each method with the protocol's signature; arguments travel as JSON and results are rebuilt
into the server's own pydantic types from the protocol's return annotations.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import ValidationError

from hostel.bridge._crashes import CrashedRequests, fingerprint
from hostel.bridge._deps import ServerApis
from hostel.bridge._loop import HostLoop, iterate_on
from hostel.bridge._server import Server
from hostel.bridge._shared import BridgedHost
from hostel.errors import (
    BadArgumentsError,
    HostelError,
    MethodNotFoundError,
    ProviderCrashedError,
    ProviderUnavailableError,
    RemoteError,
)
from hostel.gateway.http_errors import headers_for, status_for
from hostel_sdk import _exceptions, codec
from hostel_sdk._blobs import Blob
from hostel_sdk._client import decodes_with
from hostel_sdk._llama_stack import PROTOCOLS, SERVER_CONTEXT_KEY, protocol_methods, return_types

logger = logging.getLogger(__name__)

Fallback = Callable[[tuple[Any, ...]], Any]

# What the server's routing tables get from a provider that does not implement one of their private methods.
_FALLBACKS: dict[str, Fallback] = {
    "should_refresh_models": lambda args: False,
    "list_models": lambda args: None,
    "list_scoring_functions": lambda args: [],
}


def _fallback(name: str) -> Fallback | None:
    if name in _FALLBACKS:
        return _FALLBACKS[name]
    if name.startswith("register_"):
        return lambda args: args[0] if args else None  # accepted as registered
    if name.startswith("unregister_"):
        return lambda args: None
    return None


def for_server(exc: HostelError, *, no_retry: bool = False) -> Exception:
    """What the server should see for ``exc``: what the provider raised, as its own type when the server has it
    (else as the nearest base it has), so the server maps it to HTTP exactly as in process; hostel's own errors
    with the HTTP status to answer (Llama Stack and OGX read ``status_code``); ``no_retry``: tell HTTP clients not to
    send it again (as after a crash)."""
    if isinstance(exc, RemoteError) and not isinstance(exc, (MethodNotFoundError, BadArgumentsError)):
        raised, _ = _exceptions.rebuild(
            exc.type_name,
            exc.bases,
            exc.remote_message,
            status_code=exc.status_code or 0,
            attributes_json=exc.attributes_json,
        )
        if exc.remote_traceback:
            raised.add_note(f"raised by provider {exc.provider_id!r} in its hostel worker:\n{exc.remote_traceback}")
        return raised
    status = 501 if isinstance(exc, MethodNotFoundError) else status_for(exc)
    headers = {**headers_for(exc), **({"x-should-retry": "false"} if no_retry else {})}
    return _as_http_error(exc, status, headers)


_HTTP_ERRORS: dict[type[HostelError], type[Exception]] = {}


def _as_http_error(exc: HostelError, status: int, headers: dict[str, str]) -> Exception:
    """``exc``, also as starlette's ``HTTPException`` (FastAPI's handler answers it): Llama Stack and OGX answer it
    with its status, detail and headers and log no traceback (a crash reads as hostel's one paragraph, which the
    bridge logs), and its headers reach the client: ``x-should-retry: false`` after a crash, ``Retry-After`` when
    busy. Its ``status_code`` is what servers that read only that attribute answer too."""
    from starlette.exceptions import HTTPException

    base = type(exc)
    cls = _HTTP_ERRORS.get(base)
    if cls is None:
        cls = _HTTP_ERRORS[base] = type(base.__name__, (base, HTTPException), {"__module__": base.__module__})
    made: Any = Exception.__new__(cls)
    made.__dict__.update(vars(exc))
    made.args = exc.args
    made.status_code = status
    made.detail = str(exc)
    made.headers = headers or None
    return made  # type: ignore[no-any-return]


class Bridge:
    """Base of the generated per-API classes: one real provider in a hostel-supervised worker."""

    def __init__(
        self,
        *,
        server: Server,
        api: str,
        host: BridgedHost,
        thread: HostLoop,
        provider_id: str,
        server_apis: ServerApis,
        start_error: HostelError | None = None,
    ) -> None:
        self._server = server
        self._api = api
        self._host = host
        self._thread = thread
        self.serving_loop: asyncio.AbstractEventLoop | None = None  # where the server calls from (deps go there)
        self._provider_id = provider_id
        self._start_error = start_error
        self._provider_data = server.provider_data_var()
        self._unrebuilt: set[str] = set()
        self._crashes = CrashedRequests(provider_id)
        self._server_apis = server_apis

    @property
    def hostel(self) -> BridgedHost:
        """The host running the real provider (its status): a ``hostel.Host``, or the server's shared one's."""
        return self._host

    async def initialize(self) -> None:
        """Nothing to do: the factory started the worker (and the real provider's factory initialized it)."""

    async def shutdown(self) -> None:
        """Stop the worker (the server is shutting down)."""
        if not self._thread.loop.is_closed():
            await self._thread.run(self._host.stop)
            self._thread.close()

    async def _call(self, method: str, args: Any, kwargs: Any, *, timeout: float | None, provider_data: Any) -> Any:
        self.serving_loop = asyncio.get_running_loop()
        return await self._thread.run(
            lambda: self._host.call(
                self._provider_id, method, args, kwargs, timeout=timeout, provider_data=provider_data
            )
        )

    async def health(self) -> dict[str, Any]:
        """The worker's state; when it is ready, the real provider's own ``health()`` if it has one."""
        if self._start_error is not None:
            return {"status": "Error", "message": f"hostel could not start it: {self._start_error}"}
        status = self._host.status()[0]
        if status.state != "ready":
            return {"status": "Error", "message": f"hostel worker is {status.state} (last exit: {status.last_exit})"}
        try:
            reply = await self._call("health", (), {}, timeout=10, provider_data=None)
        except MethodNotFoundError:
            return {"status": "OK"}
        except HostelError as exc:
            return {"status": "Error", "message": str(exc)}
        return reply if isinstance(reply, dict) else {"status": "OK"}

    async def _forward(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], types: tuple[Any, Any], fallback: Any
    ) -> Any:
        if self._start_error is not None:
            raise for_server(
                ProviderUnavailableError(
                    f"provider {self._provider_id!r} did not start: {self._start_error}", provider_id=self._provider_id
                )
            )
        provider_data = self._provider_data.get() if self._provider_data is not None else None

        def request() -> str | None:
            return fingerprint(method, args, kwargs, provider_data)

        refused = self._crashes.refused(request)
        if refused is not None:
            logger.warning("%s", refused)
            raise for_server(refused, no_retry=True)
        context = self._server_apis.enter_call()
        sent = {**(provider_data if isinstance(provider_data, dict) else {}), SERVER_CONTEXT_KEY: context}
        try:
            result = await self._call(method, args, kwargs, timeout=None, provider_data=sent)
            if isinstance(result, Blob):
                return await self._blob(result, types[0])
            if hasattr(result, "__aiter__"):
                return self._stream(method, result, types[1])
            return self._rebuild(method, result, types[0])
        except MethodNotFoundError as exc:
            if fallback is not None:
                return fallback(args)
            raise for_server(exc) from None
        except ProviderCrashedError as exc:
            self._crashes.remember(request(), exc)
            logger.error("%s", exc)
            raise for_server(exc) from None
        except HostelError as exc:
            raise for_server(exc) from None

    async def _blob(self, blob: Blob, annotation: Any) -> Any:
        """Bytes the provider returned, as the server expects them: ``bytes``, else a starlette ``Response``
        (a file's content: streamed from the worker as the server sends it, one chunk in memory at a time)."""
        if annotation in (bytes, bytes | None):
            return await self._thread.run(blob.read)
        from starlette.responses import Response, StreamingResponse

        headers = dict(blob.headers)
        if blob.inline is not None:
            return Response(blob.inline, status_code=blob.status_code, headers=headers, media_type=blob.media_type)
        # One turn of the loop: the blob's read, started as the result was opened, goes out now rather than after
        # the server's own work on the response (middleware, its access log; 1.5-2 ms of OGX's before the body).
        await asyncio.sleep(0)
        body = iterate_on(self._thread.loop, blob.views())
        return StreamingResponse(body, status_code=blob.status_code, headers=headers, media_type=blob.media_type)

    def _stream(self, method: str, stream: Any, item_type: Any) -> AsyncIterator[Any]:
        """The items as the server's ``item_type``: each validated straight from its JSON as the server takes it
        (one step, where decoding and then rebuilding took two), else rebuilt from its decoded value."""
        if item_type is not None and decodes_with(stream, bytes):
            make = self._decoder(method, item_type)
        else:
            make = functools.partial(self._rebuild, method, annotation=item_type)
        return iterate_on(self._thread.loop, stream, for_server, make)

    def _decoder(self, method: str, annotation: Any) -> Callable[[bytes], Any]:
        # Another version's shape passes on as sent, said once.
        return codec.lenient_json_rebuilder(annotation, lambda exc: self._unfit(method, annotation, exc))

    def _rebuild(self, method: str, value: Any, annotation: Any) -> Any:
        if annotation is None or value is None:
            return value
        try:
            return codec.rebuild(value, annotation)
        except Exception as exc:  # noqa: BLE001 - another version's shape: pass it on as sent, say so once
            self._unfit(method, annotation, exc)
            return codec.as_sent(value)

    def _unfit(self, method: str, annotation: Any, exc: Exception) -> None:
        if method not in self._unrebuilt:
            self._unrebuilt.add(method)
            logger.warning(
                "%s.%s(): the result does not fit the server's %s; passing it on as the provider sent it (%s)",
                self._provider_id, method, annotation, _first_error(exc),
            )  # fmt: skip


def _first_error(exc: Exception) -> str:
    """What a validation error is about, in a line: its first field and why (the values it names may be large)."""
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the value"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    return str(exc).splitlines()[0]


def _forwarder(name: str, function: Any, fallback: Fallback | None) -> Callable[..., Any]:
    types = return_types(function)

    async def method(self: Bridge, /, *args: Any, **kwargs: Any) -> Any:  # a keyword named "self" is an argument
        return await self._forward(name, args, kwargs, types, fallback)

    method.__name__ = name
    method.__doc__ = function.__doc__
    method.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return method


def bridge_class(server: Server, api: str) -> type[Bridge]:
    """A ``Bridge`` subclass with every method of the server's protocol for ``api`` (and of what its
    routing tables call on providers), each forwarding to the worker."""
    namespace: dict[str, Any] = {}
    private = server.private_protocol(api)
    if private is not None:
        for name, function in protocol_methods(private).items():
            namespace[name] = _forwarder(name, function, _fallback(name))
    protocol = server.protocol(api)
    if protocol is not None:
        for name, function in protocol_methods(protocol).items():
            namespace[name] = _forwarder(name, function, None)
    for own in ("initialize", "shutdown", "health"):
        namespace.pop(own, None)
    namespace["__module__"] = __name__
    return type(f"Hostel{PROTOCOLS[api]}Bridge", (Bridge,), namespace)
