"""A bridged provider's ``deps``, served by the Llama Stack server's own routers.

The real provider calls ``deps[Api.inference].openai_embeddings(...)`` in its worker; the call comes back
over hostel's callback socket and lands here, where its JSON arguments are rebuilt into the server's own
types (from the router method's signature) and the server's request provider data is set around it.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import io
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from pydantic_core import to_jsonable_python
from starlette.datastructures import Headers

from hostel.bridge._loop import iterate_on, run_on
from hostel.transport.callbacks import NamedMethods
from hostel_sdk import _received
from hostel_sdk._llama_stack import SERVER_CONTEXT_KEY
from hostel_sdk.codec import MethodBinder

# Contexts of recent bridged calls kept for the deps calls of what they started (oldest forgotten first).
_KEPT_CONTEXTS = 1024


class ServerApis:
    """``hostel.host.ExternalApis`` over the deps the bridge received, and the stores the server set on it."""

    def __init__(
        self,
        deps: Mapping[Any, Any],
        bridge: Callable[[], Any],
        provider_data_var: ContextVar[Any] | None,
        factory_loop: asyncio.AbstractEventLoop,
        *,
        key_prefix: str = "",
    ) -> None:
        """``deps``: what the server passed to the bridge's factory (keyed by its ``Api`` enum).
        ``bridge``: the bridge object, on which the server sets ``model_store`` / ``shield_store``, and
        which knows the loop the server serves requests from. ``key_prefix``: what the keys of this server
        process's calls begin with (a shared host routes their deps calls back by it)."""
        self._targets = {str(getattr(api, "value", api)): target for api, target in deps.items()}
        self.apis = frozenset(self._targets)
        self._bridge = bridge
        self._factory_loop = factory_loop
        self._var = provider_data_var
        self._binders: dict[tuple[str, str], MethodBinder] = {}
        self._calls: OrderedDict[str, contextvars.Context] = OrderedDict()
        self._key_prefix = key_prefix

    def enter_call(self) -> str:
        """Keep the context of the server request the caller is in (its context variables: provider data, the user,
        the trace, OGX's test context ...) for the deps calls the worker makes while serving it, and from the tasks
        it started for it (a file batch processed in the background: in process, such a task keeps the request's
        context too); the key to send along, in the call's provider data (``SERVER_CONTEXT_KEY``), which the
        worker echoes in those calls. The last ``_KEPT_CONTEXTS`` are kept."""
        key = self._key_prefix + secrets.token_hex(16)
        self._calls[key] = contextvars.copy_context()
        while len(self._calls) > _KEPT_CONTEXTS:
            self._calls.popitem(last=False)
        return key

    def methods(self) -> dict[str, list[str]]:
        """The public methods of the server's object for each API (its router, its own service): what a bridged
        provider's deps offer, and no other attribute (its routing table, say, stays here)."""
        found = {}
        for api, target in self._targets.items():
            names = []
            for name in dir(target):
                if name.startswith("_"):
                    continue
                try:
                    if callable(getattr(target, name)):
                        names.append(name)
                except Exception:  # noqa: BLE001 - a property that fails to read is no method
                    continue
            found[api] = names
        return found

    def api(self, api: str, *, timeout: float | None = None, provider_data: Any = None) -> _ServerApi:
        """The server's router for ``api``; ``timeout`` is the caller's deadline, enforced on its side."""
        return _ServerApi(self, api, provider_data)

    def _binder(self, api: str, method: str) -> tuple[Callable[..., Any], MethodBinder]:
        target = getattr(self._targets[api], method, None)
        if method.startswith("_") or not callable(target):
            raise AttributeError(f"the server's {api} API has no method {method!r}")
        binder = self._binders.get((api, method))
        if binder is None:
            binder = self._binders[(api, method)] = MethodBinder.for_callable(method, target)
        return target, binder

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The loop serving the server's requests (its routers' resources live there)."""
        bridge = self._bridge()
        loop = getattr(bridge, "serving_loop", None) or self._factory_loop
        if loop.is_closed():
            raise RuntimeError("the Llama Stack server's event loop is gone; the server is shutting down")
        return loop

    async def invoke(self, api: str, method: str, provider_data: Any, args: Any, kwargs: Any) -> Any:
        """Call the server's router with rebuilt arguments, on the server's loop; a stream comes back item by item."""
        target, binder = self._binder(api, method)
        args, kwargs = list(args), dict(kwargs)
        for position, value in enumerate(args):
            if isinstance(value, _received.BlobFile):
                args[position] = await _as_server_value(value, binder.annotation(position))
        for name, value in kwargs.items():
            if isinstance(value, _received.BlobFile):
                kwargs[name] = await _as_server_value(value, binder.annotation(name))
        bound_args, bound_kwargs = binder.bind(args, kwargs)
        loop = self._loop()
        request = None
        if isinstance(provider_data, dict) and SERVER_CONTEXT_KEY in provider_data:
            request = self._calls.get(str(provider_data[SERVER_CONTEXT_KEY]))
            provider_data = {k: v for k, v in provider_data.items() if k != SERVER_CONTEXT_KEY} or None

        async def start() -> Any:
            if request is not None:  # as in process: the call runs in the context of the request it serves
                for var, value in request.items():
                    var.set(value)
            echoed = request is None and self._var is not None and provider_data is not None
            token = self._var.set(provider_data) if echoed and self._var is not None else None
            try:
                result = target(*bound_args, **bound_kwargs)
                return await result if inspect.isawaitable(result) else result  # an async generator method
            finally:
                if token is not None and self._var is not None:
                    self._var.reset(token)

        result = await run_on(loop, start)
        if hasattr(result, "__aiter__"):
            return iterate_on(loop, result)
        return result

    async def model_record(self, model_id: str) -> dict[str, Any] | None:
        """The server's model registry entry, as JSON fields."""
        return await self._lookup("model_store", "get_model", model_id)

    async def shield_record(self, shield_id: str) -> dict[str, Any] | None:
        """The server's shield registry entry, as JSON fields."""
        return await self._lookup("shield_store", "get_shield", shield_id)

    async def _lookup(self, store_name: str, method: str, identifier: str) -> dict[str, Any] | None:
        store = getattr(self._bridge(), store_name, None)
        if store is None:
            return None
        try:
            found = await run_on(self._loop(), lambda: getattr(store, method)(identifier))
        except Exception:  # noqa: BLE001 - the server's "not found" is an exception of its own: report absence
            return None
        value = to_jsonable_python(found) if found is not None else None
        return value if isinstance(value, dict) else None


async def _as_server_value(blob: _received.BlobFile, hint: Any) -> Any:
    """Bytes or a file a provider passed to the server's API, as the server's method takes it: read here (on hostel's
    loop, which the bytes arrive on) and handed over as ``bytes``, ``str`` or an ``UploadFile`` over them, as the
    server's own upload route hands its providers a file it has read."""
    data = await blob.read()
    target = _received.unwrap(hint)
    if target is bytes or target is str:
        return data if target is bytes else data.decode()
    cls = _received.upload_base(target)
    if cls is None:
        return data
    headers = Headers({"content-type": blob.content_type}) if blob.content_type else None
    return cls(io.BytesIO(data), size=len(data), filename=blob.filename, headers=headers)


class _ServerApi(NamedMethods):
    __slots__ = ("_api", "_apis", "_provider_data")

    def __init__(self, apis: ServerApis, api: str, provider_data: Any) -> None:
        self._apis = apis
        self._api = api
        self._provider_data = provider_data

    async def invoke(self, method: str, args: Any, kwargs: Any) -> Any:
        """Call ``method`` of the server's router for this API."""
        return await self._apis.invoke(self._api, method, self._provider_data, args, kwargs)
