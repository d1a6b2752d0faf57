"""A datasetio provider holding a few evaluation rows in memory (`iterrows`, old and new call styles)."""

from __future__ import annotations

from typing import Any

ROWS = [
    {"user_input": "What colour is the sky?", "response": "The sky is blue.", "reference": "The sky is blue."},
    {"user_input": "What do cats drink?", "response": "Cats drink milk.", "reference": "Cats drink water."},
    {"user_input": "Capital of France?", "response": "Rockets fly to space.", "reference": "Paris is the capital."},
]


class FakeDatasetIO:
    async def iterrows(self, request: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        args = {**(request or {}), **kwargs}
        limit = args.get("limit") or len(ROWS)
        start = args.get("start_index") or 0
        rows = ROWS[start : start + limit]
        return {"data": rows, "has_more": start + limit < len(ROWS)}

    async def append_rows(self, *args: Any, **kwargs: Any) -> None:
        return None


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> FakeDatasetIO:
    return FakeDatasetIO()
