"""A datasetio provider holding evaluation rows in memory (`iterrows`, old and new call styles): the rows of
datasets registered with it, and a few default ones for any other dataset id."""

from __future__ import annotations

from typing import Any

ROWS = [
    {"user_input": "What colour is the sky?", "response": "The sky is blue.", "reference": "The sky is blue."},
    {"user_input": "What do cats drink?", "response": "Cats drink milk.", "reference": "Cats drink water."},
    {"user_input": "Capital of France?", "response": "Rockets fly to space.", "reference": "Paris is the capital."},
]


class FakeDatasetIO:
    def __init__(self) -> None:
        self.datasets: dict[str, list[dict[str, Any]]] = {}

    async def register_dataset(self, dataset: dict[str, Any]) -> None:
        source = dataset.get("source") or {}
        self.datasets[dataset["identifier"]] = list(source.get("rows") or [])

    async def unregister_dataset(self, dataset_id: str) -> None:
        self.datasets.pop(dataset_id, None)

    async def iterrows(self, request: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        args = {**(request or {}), **kwargs}
        rows = self.datasets.get(args.get("dataset_id", ""), ROWS)
        limit = args.get("limit") or len(rows)
        start = args.get("start_index") or 0
        return {"data": rows[start : start + limit], "has_more": start + limit < len(rows)}

    async def append_rows(self, *args: Any, **kwargs: Any) -> None:
        return None


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> FakeDatasetIO:
    return FakeDatasetIO()
