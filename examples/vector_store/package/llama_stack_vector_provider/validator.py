"""Per-request provider data: which namespace (collection) a request reads and writes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class VectorStoreValidator(BaseModel):
    """``X-LlamaStack-Provider-Data: {"namespace": "team-a"}``."""

    namespace: str = Field("default", pattern=r"^[A-Za-z0-9_-]{1,64}$")
