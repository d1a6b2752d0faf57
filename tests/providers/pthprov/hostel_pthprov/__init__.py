"""A provider whose wheel ships a ``.pth`` file (see ``_boot``): ``seen()`` says what that code could reach."""

from __future__ import annotations

from typing import Any

from hostel_pthprov import _boot


class PthProvider:
    async def seen(self) -> dict[str, str]:
        return dict(_boot.SEEN)


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> PthProvider:
    return PthProvider()
