"""Which methods of a provider object callers may call: its API, never its lifecycle or its insides.

With the Llama Stack (or OGX) API package in the venv, the methods of the API's protocol and of what its
routing tables call on providers (``register_model``, ``register_benchmark`` ...); without it, the
provider's public functions (methods defined on its class, not callable attributes such as a lambda or a
client object stored on the instance). Both plus the provider entry's ``expose`` list, and never a
lifecycle method: ``initialize`` and ``shutdown`` are the host's to call, once each.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from typing import Any

from hostel_sdk import _llama_stack

# Methods only the host calls (or plumbing the stack sets up), whatever a protocol or `expose` says.
LIFECYCLE_METHODS = frozenset(
    {"initialize", "shutdown", "close", "aclose", "get_request_provider_data", "model_store", "shield_store"}
)


def callable_name(name: str) -> bool:
    """Whether a caller may name this method at all: public, an identifier, not a lifecycle method."""
    return name.isidentifier() and not name.startswith("_") and name not in LIFECYCLE_METHODS


def _is_function(cls: type, name: str) -> bool:
    try:
        attr = inspect.getattr_static(cls, name)
    except AttributeError:
        return False
    return inspect.isfunction(attr) or isinstance(attr, (staticmethod, classmethod))


def api_method_names(api: str) -> set[str] | None:
    """The methods of ``api``'s protocols in the Llama Stack API package the provider imported, if any."""
    module = sys.modules.get("llama_stack_api") or sys.modules.get("ogx_api")
    protocol = _llama_stack.protocol_class(module, api) if module is not None and api else None
    if protocol is None:
        return None
    names = set(_llama_stack.protocol_methods(protocol))
    private = _llama_stack.private_protocol_class(module, api)
    if private is not None:
        names.update(_llama_stack.protocol_methods(private))
    return names


def exposed_methods(impl: object, *, api: str = "", expose: Iterable[str] = ()) -> dict[str, Callable[..., Any]]:
    """The bound methods of ``impl`` that callers may call, by name."""
    names = api_method_names(api)
    if names is None:
        names = {name for name in dir(type(impl)) if _is_function(type(impl), name)}
    names.update(expose)
    methods = {}
    for name in sorted(names):
        if not callable_name(name):
            continue
        try:
            attr = getattr(impl, name)
        except Exception:  # noqa: BLE001 - a property that raises is not a method
            continue
        if callable(attr) and not inspect.isclass(attr):
            methods[name] = attr
    return methods
