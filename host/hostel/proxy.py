"""Proxies: ``await host.provider("id").method(...)`` calls a provider method in its worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Caller(Protocol):
    """What a proxy forwards to (the host)."""

    async def call(
        self,
        provider_id: str,
        method: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        timeout: float | None,
        provider_data: Any,
    ) -> Any:
        """Forward one call."""
        ...


class ProviderProxy:
    """Stands for one provider. Attribute access gives an async method; awaiting it returns the JSON
    result, or an async iterator of items when the provider returned a stream."""

    __slots__ = ("_caller", "_provider_data", "_provider_id", "_timeout")

    def __init__(
        self, caller: Caller, provider_id: str, *, timeout: float | None = None, provider_data: Any = None
    ) -> None:
        self._caller = caller
        self._provider_id = provider_id
        self._timeout = timeout
        self._provider_data = provider_data

    @property
    def provider_id(self) -> str:
        """The provider this proxy calls."""
        return self._provider_id

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self, name)

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` by name (for names that are not valid identifiers or clash with this class).

        ``method`` is positional-only: a provider argument may be called ``method`` (or ``self``) too."""
        return await self._caller.call(
            self._provider_id, method, args, kwargs, timeout=self._timeout, provider_data=self._provider_data
        )

    def __repr__(self) -> str:
        return f"<ProviderProxy {self._provider_id!r}>"


class _Method:
    __slots__ = ("_name", "_proxy")

    def __init__(self, proxy: ProviderProxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    async def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return await self._proxy.call(self._name, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<method {self._name} of provider {self._proxy.provider_id!r}>"
