"""Per-request context inside a worker: the provider data of the call being served."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_provider_data: ContextVar[Any] = ContextVar("hostel_provider_data", default=None)


def request_provider_data() -> Any:
    """Return the provider data of the request being served.

    The object built by the provider's ``provider_data_validator`` when it has one, else the raw
    dict sent by the caller (``X-LlamaStack-Provider-Data``), or ``None`` when the call carried none.
    """
    return _provider_data.get()


def set_provider_data(value: Any) -> Any:
    """Set the provider data for the current context; returns a token for ``reset_provider_data``."""
    return _provider_data.set(value)


def reset_provider_data(token: Any) -> None:
    """Undo ``set_provider_data``."""
    _provider_data.reset(token)
