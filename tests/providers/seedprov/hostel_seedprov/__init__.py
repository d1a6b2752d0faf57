"""Seed-style remote provider: the host has it installed; its spec lists only its dependencies."""

from __future__ import annotations

import sys
from typing import Any

import idna
from pydantic import BaseModel


class SeedConfig(BaseModel):
    url: str


class SeedAdapter:
    def __init__(self, config: SeedConfig) -> None:
        self.config = config

    async def info(self) -> dict[str, Any]:
        return {"url": self.config.url, "module_file": __file__, "prefix": sys.prefix, "idna": idna.__version__}


async def get_adapter_impl(config: SeedConfig, deps: dict[Any, Any]) -> SeedAdapter:
    return SeedAdapter(config)
