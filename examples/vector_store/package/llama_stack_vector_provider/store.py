"""Documents in FAISS inner-product indexes, one per namespace; embeddings come from ``deps[Api.inference]``."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
from pydantic import BaseModel

from hostel_sdk import Api, request_provider_data
from llama_stack_vector_provider.config import VectorStoreConfig


class Document(BaseModel):
    """A document to store."""

    id: str
    text: str
    metadata: dict[str, Any] = {}


class _Namespace:
    def __init__(self, dimension: int) -> None:
        self.index = faiss.IndexFlatIP(dimension)
        self.documents: list[Document] = []


class FaissVectorStore:
    """``insert_documents`` and ``query``, per namespace (chosen by provider data)."""

    def __init__(self, config: VectorStoreConfig, deps: dict[Any, Any]) -> None:
        self.config = config
        self.inference = deps[Api.inference]
        self.namespaces: dict[str, _Namespace] = {}

    def _namespace(self) -> _Namespace:
        data = request_provider_data()
        name = data.namespace if data is not None else "default"
        return self.namespaces.setdefault(name, _Namespace(self.config.dimension))

    async def _embed(self, texts: list[str]) -> np.ndarray:
        reply = await self.inference.openai_embeddings(model=self.config.embedding_model, input=texts)
        vectors = np.array([d["embedding"] for d in reply["data"]], dtype="float32")
        if vectors.shape[1] != self.config.dimension:
            raise ValueError(f"embedding model gave {vectors.shape[1]} dimensions, config says {self.config.dimension}")
        faiss.normalize_L2(vectors)
        return vectors

    async def insert_documents(self, documents: list[Document]) -> dict[str, int]:
        """Embed and index the documents."""
        namespace = self._namespace()
        namespace.index.add(await self._embed([d.text for d in documents]))
        namespace.documents.extend(documents)
        return {"inserted": len(documents), "total": len(namespace.documents)}

    async def query(self, query: str, k: int = 3) -> list[dict[str, Any]]:
        """The ``k`` documents most similar to ``query``."""
        namespace = self._namespace()
        if not namespace.documents:
            return []
        scores, ids = namespace.index.search(await self._embed([query]), min(k, len(namespace.documents)))
        return [
            {"id": namespace.documents[i].id, "text": namespace.documents[i].text, "score": round(float(s), 4)}
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]

    async def health(self) -> dict[str, str]:
        """Llama Stack's health()."""
        return {"status": "OK"}
