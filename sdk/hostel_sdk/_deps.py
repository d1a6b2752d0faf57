"""A provider's ``deps``: one proxy per API it depends on, calling back into the host.

Keys are Llama Stack's ``Api`` members when Llama Stack (or OGX) is importable in the venv, else
``hostel_sdk.Api`` members (a ``str`` enum, so ``deps["inference"]`` works as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

from hostel_sdk import _blobs, _client, _llama_stack, _telemetry, codec
from hostel_sdk import _messages as pb
from hostel_sdk._client import decodes_with
from hostel_sdk._context import RequestContext, current_request
from hostel_sdk._wire import MODEL_STORE_API, SHIELD_STORE_API, HostStub, channel_options, tls_channel, token_metadata
from hostel_sdk.api import Api

# Where Api lives, newest first: llama-stack-api, Llama Stack 0.2.x-0.6, and the OGX rename.
_API_MODULES = ("llama_stack_api", "llama_stack.providers.datatypes", "ogx_api", "ogx.providers.datatypes")


def api_enum() -> type[Enum]:
    """Llama Stack's (or OGX's) ``Api`` enum if the venv has one, else ``hostel_sdk.Api``."""
    for name in _API_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a broken Llama Stack must not stop a provider that only wants names
            continue
        found = getattr(module, "Api", None)
        if isinstance(found, type) and issubclass(found, Enum):
            return found
    return Api


def api_key(name: str, enum: type[Enum]) -> Any:
    """The member of ``enum`` for ``name``, or the ``hostel_sdk.Api`` member if that version lacks it."""
    try:
        return enum(name)
    except ValueError:
        return Api(name)


class HostClient:
    """The worker's connection to the host's callback service."""

    def __init__(self, target: str, token: str, *, max_message_bytes: int, tls: dict[str, str] | None = None) -> None:
        """``target``: ``unix:///path`` (the host's socket) or ``host:port`` (its TCP listener, for remote workers)."""
        self._channel = tls_channel(target, tls, channel_options(max_message_bytes, local=target.startswith("unix:")))
        self._stub = HostStub(self._channel, token_metadata(token))
        self._blobs = _blobs.Transfer(self._stub)
        self._loop = asyncio.get_running_loop()  # gRPC channels belong to the loop they were made on

    async def call(self, api: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call ``api.method`` through the host, within the current request's deadline and provider data.

        Works from any event loop: a provider that runs work in a thread with a loop of its own (ragas
        does) has its calls carried over to the worker's loop, and streams read back the same way.
        """
        request_context = current_request()
        if asyncio.get_running_loop() is self._loop:
            return await self._call(api, method, args, kwargs, request_context)
        future = asyncio.run_coroutine_threadsafe(self._call(api, method, args, kwargs, request_context), self._loop)
        result = await asyncio.wrap_future(future)
        return _ForeignStream(result, self._loop) if hasattr(result, "__aiter__") else result

    async def call_in(
        self, request_context: RequestContext, api: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """``call`` with that request's provider data and deadline, on this client's loop: for a process that relays
        the calls of workers of its own (a shared host, ``hostel.bridge.hub``)."""
        return await self._call(api, method, args, kwargs, request_context)

    async def _call(
        self, api: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], request_context: Any
    ) -> Any:
        outbox = self._blobs.outbox()  # bytes and files among the arguments go beside the call (SendBlob)
        request = pb.HostCallRequest(
            api=api,
            method=method,
            args_json=codec.dumps(list(args), blobs=outbox, as_arguments=True) if args else b"",
            kwargs_json=codec.dumps(kwargs, blobs=outbox, as_arguments=True) if kwargs else b"",
            provider_data_json=request_context.raw_provider_data,
            trace_context=_telemetry.inject(),
        )
        pushes = self._blobs.push(outbox) if outbox.sources else None
        try:
            call = self._stub.call(request, timeout=request_context.time_remaining())
            errors = _client.PythonErrors(f"{api}.{method}() through the host")
            return await _client.result(call, errors, open_blobs=self._blobs.values)
        finally:
            if pushes is not None:
                pushes.end()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()


class _ForeignStream:
    """A stream read on the worker's loop, iterated from another loop."""

    def __init__(self, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop

    def __aiter__(self) -> _ForeignStream:
        return self

    async def __anext__(self) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._stream.__anext__(), self._loop))

    def decode_with(self, decode: Callable[[bytes], Any]) -> bool:
        """Have the stream make its items with ``decode`` (``ReplyStream.decode_with``)."""
        return decodes_with(self._stream, decode)

    async def aclose(self) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._stream.aclose(), self._loop))


class ApiProxy:
    """Stands for one API in ``deps``: ``await deps[Api.inference].openai_embeddings(...)``.

    Awaiting a method returns its result, or an async iterator of its items for a stream, as a router would: as the
    types the API's protocol declares in the provider's Llama Stack (or OGX), else plain JSON.
    """

    def __init__(self, client: HostClient, api: str, methods: frozenset[str] | None = None) -> None:
        """``methods``: those of the object that answers this API, where the host knows them (a server's router,
        through the bridge); ``None``: any name is a method."""
        self._client = client
        self._api = api
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._methods is not None and name not in self._methods:
            # As an object without it would: a provider that looks for the server's internals (OGX's interactions
            # provider asks its inference router for `routing_table`) takes the path it has for their absence.
            raise AttributeError(
                f"the server's {self._api} API has no method {name!r}; a provider in a hostel worker reaches the "
                "server's APIs by their methods only, not the server's own objects (its routing tables, its other "
                "providers)"
            )

        async def method(*args: Any, **kwargs: Any) -> Any:
            value = await self._client.call(self._api, name, args, kwargs)
            if isinstance(value, _blobs.Blob):
                return await _llama_stack.rebuild_blob(self._api, name, value)
            if not hasattr(value, "__aiter__"):
                return _llama_stack.rebuild_result(self._api, name, value)
            decode = _llama_stack.item_decoder(self._api, name)
            if decode is not None:
                decodes_with(value, decode)
            return value

        method.__name__ = name
        return method

    def __repr__(self) -> str:
        return f"<hostel ApiProxy {self._api}>"


def _as_resource(record: Any, type_name: str, modules: tuple[str, ...]) -> Any:
    """A table row as that Llama Stack's resource type (``Model``, ``Shield``), else attribute access."""
    for name in modules:
        module = sys.modules.get(name)
        cls = getattr(module, type_name, None) if module else None
        if cls is not None and hasattr(cls, "model_validate"):
            return cls.model_validate(record)
    return types.SimpleNamespace(**record)


class ModelStore:
    """``impl.model_store`` for Llama Stack inference adapters: the host's models table, read-only."""

    def __init__(self, client: HostClient) -> None:
        self._client = client

    async def get_model(self, identifier: str) -> Any:
        """The model row, as that Llama Stack's ``Model`` when it has one (attribute access either way)."""
        record = await self._client.call(MODEL_STORE_API, "get_model", (), {"identifier": identifier})
        return _as_resource(record, "Model", ("llama_stack_api", "ogx_api", "llama_stack.apis.models"))

    async def has_model(self, identifier: str) -> bool:
        """Whether the models table names ``identifier``."""
        return bool(await self._client.call(MODEL_STORE_API, "has_model", (), {"identifier": identifier}))


class ShieldStore:
    """``impl.shield_store`` for Llama Stack safety providers: the host's shields table, read-only."""

    def __init__(self, client: HostClient) -> None:
        self._client = client

    async def get_shield(self, identifier: str) -> Any:
        """The shield row, as that Llama Stack's ``Shield`` when it has one (attribute access either way)."""
        record = await self._client.call(SHIELD_STORE_API, "get_shield", (), {"identifier": identifier})
        return _as_resource(record, "Shield", ("llama_stack_api", "ogx_api", "llama_stack.apis.shields"))

    async def has_shield(self, identifier: str) -> bool:
        """Whether the shields table names ``identifier``."""
        return bool(await self._client.call(SHIELD_STORE_API, "has_shield", (), {"identifier": identifier}))


def inject_stores(impl: object, client: HostClient | None) -> None:
    """Give a provider the stack-injected stores it declares and leaves unset (``model_store``, ``shield_store``)."""
    if client is None:
        return
    for attribute, store in (("model_store", ModelStore), ("shield_store", ShieldStore)):
        if hasattr(impl, attribute) and getattr(impl, attribute) is None:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(impl, attribute, store(client))


def build_deps(
    client: HostClient | None, apis: Iterable[str], methods: Mapping[str, Iterable[str]] | None = None
) -> dict[Any, ApiProxy]:
    """The ``deps`` mapping for a provider's factory; ``methods``: those of each API's server object, where the host
    knows them (``StartRequest.deps_methods``)."""
    if client is None:
        return {}
    enum = api_enum()
    known = methods or {}
    return {api_key(api, enum): ApiProxy(client, api, frozenset(known[api]) if api in known else None) for api in apis}
