"""A provider found through its entry point; its spec asks for idna==3.7, which it reports."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Config:
    """A config class that is a dataclass, not a pydantic model (hostel validates both)."""


class EntryPointProvider:
    async def idna_version(self) -> str:
        import idna

        return idna.__version__


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> EntryPointProvider:
    return EntryPointProvider()
