"""Configuration of the FAISS vector store."""

from __future__ import annotations

from pydantic import BaseModel


class VectorStoreConfig(BaseModel):
    """Vector size and the model (a models-table id) used for embeddings."""

    dimension: int = 8
    embedding_model: str = "embed"
