"""Meeting Llama Stack providers where they are, when Llama Stack (or OGX) is in the venv.

Nothing here imports Llama Stack: a provider that needs it has imported it already, and importing it
ourselves would be slow and, for some versions, fragile. We look in ``sys.modules`` instead.
"""

from __future__ import annotations

import sys
import types
from contextvars import ContextVar
from typing import Any

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
