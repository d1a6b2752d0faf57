"""An inference provider with deterministic bag-of-words embeddings (`openai_embeddings`, both call styles)."""

from __future__ import annotations

import hashlib
from typing import Any

DIMENSION = 16


def embed(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in text.lower().replace(".", " ").replace("?", " ").split():
        digest = hashlib.sha256(word.encode()).digest()
        for i in range(DIMENSION):
            vector[i] += digest[i] / 255.0 - 0.5
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


class FakeInference:
    async def openai_embeddings(self, params: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        args = {**(params or {}), **kwargs}
        texts = [args["input"]] if isinstance(args["input"], str) else list(args["input"])
        return {
            "object": "list",
            "model": args["model"],
            "data": [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }


class Nothing:
    """Stands for an API a provider declares but this example never calls (files)."""


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> Any:
    return FakeInference() if (config or {}).get("role", "inference") == "inference" else Nothing()
