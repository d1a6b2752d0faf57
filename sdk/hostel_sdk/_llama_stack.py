"""Meeting Llama Stack providers where they are, when Llama Stack (or OGX) is in the venv.

Nothing here imports Llama Stack: a provider that needs it has imported it already, and importing it
ourselves would be slow and, for some versions, fragile. We look in ``sys.modules`` instead.
"""

from __future__ import annotations

import dis
import functools
import inspect
import sys
import types
import typing
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from hostel_sdk import codec

# Where each version keeps the request's provider data: 0.3+ ``core``, 0.2.x ``distribution``, OGX.
_HEADER_MODULES = (
    "llama_stack.core.request_headers",
    "llama_stack.distribution.request_headers",
    "ogx.core.request_headers",
)


def provider_data_var() -> ContextVar[Any] | None:
    """Llama Stack's ``PROVIDER_DATA_VAR`` if the provider's Llama Stack has one."""
    for name in _HEADER_MODULES:
        module = sys.modules.get(name)
        var = getattr(module, "PROVIDER_DATA_VAR", None) if module else None
        if isinstance(var, ContextVar):
            return var
    return None


# Where Llama Stack keeps the request's authenticated user, inside its provider data (the gateway puts it there).
USER_KEY = "__authenticated_user"
# Names, in a call's provider data, the Llama Stack server request a bridged call came from: the worker passes it
# back with its deps calls (inside the provider data it echoes) and hides it from the provider.
SERVER_CONTEXT_KEY = "__hostel_server_context"
# Names, in a call's provider data, the host's call it is: the worker passes it back with the deps calls it makes
# while serving it (inside the provider data it echoes) and the host re-attaches that call's user. Hidden too.
CALL_KEY = "__hostel_call"
HOSTEL_KEYS = (SERVER_CONTEXT_KEY, CALL_KEY)
_DATATYPES_MODULES = ("llama_stack.core.datatypes", "llama_stack.distribution.datatypes", "ogx.core.datatypes")


def stack_provider_data(data: Any) -> Any:
    """Provider data as Llama Stack's context variable holds it: the user as its own ``User`` type, when the
    provider's Llama Stack has one (``get_authenticated_user()`` returns that, not a dict); hostel's own key is not
    the provider's to see."""
    if isinstance(data, dict) and any(key in data for key in HOSTEL_KEYS):
        data = {k: v for k, v in data.items() if k not in HOSTEL_KEYS}
    user = data.get(USER_KEY) if isinstance(data, dict) else None
    if not isinstance(user, dict):
        return data
    for name in _DATATYPES_MODULES:
        user_class = getattr(sys.modules.get(name), "User", None)
        if isinstance(user_class, type):
            try:
                return {**data, USER_KEY: user_class(user.get("principal", ""), user.get("attributes"))}
            except Exception:  # noqa: BLE001 - another version's User: leave the plain dict
                return data
    return data


def annotate(impl: object, *, provider_id: str, provider_type: str, api: str, validator: str | None) -> None:
    """Set what Llama Stack's resolver sets on a provider object (``get_request_provider_data`` reads it)."""
    spec = types.SimpleNamespace(
        provider_id=provider_id, provider_type=provider_type, api=api, provider_data_validator=validator
    )
    for name, value in (("__provider_id__", provider_id), ("__provider_spec__", spec)):
        if getattr(impl, name, None) is None:
            try:
                setattr(impl, name, value)
            except (AttributeError, TypeError):
                return  # a slotted or frozen object: it cannot use NeedsRequestProviderData anyway


# The protocol class of each API in llama-stack-api (and OGX's ogx_api).
PROTOCOLS = {
    "inference": "Inference", "safety": "Safety", "eval": "Eval", "vector_io": "VectorIO", "datasetio": "DatasetIO",
    "scoring": "Scoring", "post_training": "PostTraining", "agents": "Agents", "tool_runtime": "ToolRuntime",
    "files": "Files", "batches": "Batches", "file_processors": "FileProcessors",
    # OGX 1.x: agents became responses; the rest are new.
    "responses": "Responses", "messages": "Messages", "interactions": "Interactions", "skills": "Skills",
    "container_runtime": "ContainerRuntime",
}  # fmt: skip
_ALPHA = "v1alpha"
# What the server's routing tables call on a provider besides its protocol (register_model ...), per API.
PRIVATE_PROTOCOLS = {
    "inference": "ModelsProtocolPrivate", "safety": "ShieldsProtocolPrivate",
    "vector_io": "VectorStoresProtocolPrivate", "datasetio": "DatasetsProtocolPrivate",
    "scoring": "ScoringFunctionsProtocolPrivate",
    "eval": "BenchmarksProtocolPrivate", "tool_runtime": "ToolGroupsProtocolPrivate",
}  # fmt: skip


def protocol_class(module: Any, api: str) -> type | None:
    """What a provider of ``api`` implements in that API package: its protocol, except that an inference
    provider implements ``InferenceProvider`` (the stored-completions methods of ``Inference`` are the
    server's own), as Llama Stack's compliance check has it."""
    for name in (("InferenceProvider",) if api == "inference" else ()) + (PROTOCOLS.get(api, ""),):
        found = getattr(module, name, None)
        if isinstance(found, type):
            return found
    return None


def private_protocol_class(module: Any, api: str) -> type | None:
    """What the routing tables of that API package call on a provider of ``api``, or ``None``."""
    found = getattr(module, PRIVATE_PROTOCOLS.get(api, ""), None)
    return found if isinstance(found, type) else None


def protocol_methods(protocol: type) -> dict[str, Any]:
    """The public functions a protocol declares, its bases' included (not ``typing.Protocol``'s own)."""
    methods: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        if cls.__module__ in ("typing", "builtins", "typing_extensions"):
            continue
        methods.update({n: v for n, v in vars(cls).items() if inspect.isfunction(v) and not n.startswith("_")})
    return methods


# The instructions of a function whose body is only a docstring and ``...`` (or ``pass``), sync or async, on
# Python 3.10-3.13: what a protocol leaves abstract. A protocol method with a body of its own (OGX's ``rerank``
# answers "not implemented") is not.
_STUB_OPS = frozenset({
    "RESUME", "RETURN_GENERATOR", "GEN_START", "POP_TOP", "NOP", "CACHE", "RETURN_VALUE", "RETURN_CONST",
    "LOAD_CONST", "CALL_INTRINSIC_1", "RERAISE",
})  # fmt: skip


def _abstract(function: Any) -> bool:
    try:
        instructions = list(dis.get_instructions(function))
    except TypeError:
        return False
    return all(
        op.opname in _STUB_OPS and (op.opname not in ("LOAD_CONST", "RETURN_CONST") or op.argval is None)
        for op in instructions
    )


def missing_methods(impl: object, api: str) -> list[str]:
    """The methods of the API's protocol (of the Llama Stack the provider imported) that ``impl`` lacks.

    Required are the methods the protocol leaves abstract, as a class implementing it would have to write, except
    those served only at the alpha level, which Llama Stack's own compliance check skips too. A method the protocol
    implements itself is not: OGX 1.5's ``remote::ollama`` has no ``rerank``, whose protocol body answers "not
    implemented", and its server starts it. Nothing is checked when the provider did not import
    ``llama_stack_api`` / ``ogx_api``.
    """
    module = sys.modules.get("llama_stack_api") or sys.modules.get("ogx_api")
    protocol = protocol_class(module, api) if module else None
    if protocol is None:
        return []
    missing = []
    for name, function in sorted(protocol_methods(protocol).items()):
        routes = getattr(function, "__webmethods__", None) or []
        if not _abstract(function) or any(getattr(route, "level", None) == _ALPHA for route in routes):
            continue
        if not callable(getattr(impl, name, None)):
            missing.append(name)
    return missing


# APIs the server serves itself (its routing tables and its own services), which a provider reaches only through
# ``deps``: their protocols say what their results are rebuilt as.
SERVED_PROTOCOLS = {
    "models": "Models", "shields": "Shields", "tool_groups": "ToolGroups", "prompts": "Prompts",
    "conversations": "Conversations", "connectors": "Connectors", "datasets": "Datasets",
    "scoring_functions": "ScoringFunctions", "benchmarks": "Benchmarks", "inspect": "Inspect",
    "providers": "Providers", "containers": "Containers",
}  # fmt: skip


def return_types(function: Any) -> tuple[Any, Any]:
    """``(value type, stream item type)`` of a protocol method: ``X | AsyncIterator[Y]`` gives ``(X, Y)``; ``None``
    for what it does not have or whose hints do not resolve."""
    try:
        hint = typing.get_type_hints(function).get("return")
    except Exception:  # noqa: BLE001 - unresolvable hints: results stay plain JSON
        return None, None
    if hint is None:
        return None, None
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    values: list[Any] = []
    items: list[Any] = []
    for member in typing.get_args(hint) if union else (hint,):
        origin = typing.get_origin(member)
        if isinstance(origin, type) and issubclass(origin, AsyncIterator):
            items.extend(typing.get_args(member)[:1])
        else:
            values.append(member)
    value = None if not values else values[0] if len(values) == 1 else typing.Union[tuple(values)]  # noqa: UP007
    return value, (items[0] if items else None)


@functools.lru_cache(maxsize=512)
def _deps_types(module_name: str, api: str, method: str) -> tuple[Any, Any]:
    module = sys.modules.get(module_name)
    protocol = getattr(module, PROTOCOLS.get(api) or SERVED_PROTOCOLS.get(api, ""), None) if module else None
    function = getattr(protocol, method, None)
    return (None, None) if function is None else return_types(function)


def _stack_module() -> str | None:
    return next((m for m in ("llama_stack_api", "ogx_api") if m in sys.modules), None)


def rebuild_result(api: str, method: str, value: Any) -> Any:
    """A ``deps`` result as the type the API protocol of the provider's Llama Stack declares, so a provider sees what
    it would in process; what does not fit it (another version's shape, the OpenAI SDK's object a router passed on)
    as sent, its keys attributes (``codec.AsSent``). Plain JSON without Llama Stack."""
    module_name = _stack_module()
    if module_name is None or value is None:
        return value
    annotation = _deps_types(module_name, api, method)[0]
    if annotation is None:
        return codec.as_sent(value)
    try:
        return codec.rebuild(value, annotation)
    except Exception:  # noqa: BLE001 - e.g. a router returning another shape
        return codec.as_sent(value)


def item_decoder(api: str, method: str) -> Callable[[bytes], Any] | None:
    """What makes each item of a ``deps`` stream from its JSON: the item type the API protocol of the provider's
    Llama Stack declares (an inference stream's chunk model), as sent where it does not fit; ``None`` without Llama
    Stack (items stay plain JSON)."""
    module_name = _stack_module()
    if module_name is None:
        return None
    return codec.lenient_json_rebuilder(_deps_types(module_name, api, method)[1])


async def rebuild_blob(api: str, method: str, blob: Any) -> Any:
    """A ``deps`` result that carried bytes (a ``hostel_sdk._blobs.Blob``) as the API protocol declares it: a
    starlette ``Response`` holding the body (as the server's own object would), ``bytes``, else the ``Blob``."""
    module_name = _stack_module()
    annotation = _deps_types(module_name, api, method)[0] if module_name else None
    members = [m for m in typing.get_args(annotation) if m is not type(None)] or [annotation]
    if bytes in members:
        return await blob.read()
    response = next((m for m in members if isinstance(m, type) and m.__name__ == "Response"), None)
    if response is None:
        return blob
    headers = dict(blob.headers)
    return response(await blob.read(), status_code=blob.status_code, headers=headers, media_type=blob.media_type)
