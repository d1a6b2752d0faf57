"""A provider found through its entry point; its spec asks for idna==3.7, which it reports."""

from __future__ import annotations

from typing import Any


class EntryPointProvider:
    async def idna_version(self) -> str:
        import idna

        return idna.__version__


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> EntryPointProvider:
    return EntryPointProvider()
