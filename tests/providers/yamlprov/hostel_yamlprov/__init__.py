"""A provider declared only by YAML shipped inside its package."""

from __future__ import annotations

from typing import Any


class YamlProvider:
    async def hello(self) -> str:
        return "declared by packaged YAML"


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> YamlProvider:
    return YamlProvider()
