"""Example inline provider pinned to idna>=3.7: reports the idna it sees, from its own venv and process."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import idna
from pydantic import BaseModel


class Config(BaseModel):
    label: str = "new"


class IdnaProvider:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def versions(self) -> dict[str, Any]:
        """The idna version this provider sees, and where it runs."""
        return {
            "provider": self.config.label,
            "idna": idna.__version__ if hasattr(idna, "__version__") else idna.package_data.__version__,
            "pid": os.getpid(),
            "prefix": sys.prefix,
        }

    async def encode(self, domain: str) -> str:
        """IDNA-encode a domain name with this provider's idna."""
        return idna.encode(domain).decode()

    async def spell(self, word: str) -> AsyncIterator[str]:
        """Stream the letters of a word."""
        for letter in word:
            yield letter


async def get_provider_impl(config: Config, deps: dict[Any, Any]) -> IdnaProvider:
    return IdnaProvider(config)
