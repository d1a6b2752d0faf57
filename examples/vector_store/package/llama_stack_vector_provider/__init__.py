"""An inline vector store (FAISS) that gets its embeddings from the inference API through ``deps``."""

from __future__ import annotations

from typing import Any

from llama_stack_vector_provider.config import VectorStoreConfig


async def get_provider_impl(config: VectorStoreConfig, deps: dict[Any, Any]) -> Any:
    from llama_stack_vector_provider.store import FaissVectorStore

    return FaissVectorStore(config, deps)
