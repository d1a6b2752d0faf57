"""An inference provider written for OGX 1.x that answers at once: what bench/bench_bridge.py runs in process and
bridged, so that the difference is the bridge's. ``openai_chat_completion`` echoes the last message; streamed, it
yields as many one-word chunks as the message says."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ogx_api import (
    InferenceProvider,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionRequestWithExtraBody,
)
from pydantic import BaseModel


class BenchConfig(BaseModel):
    prefix: str = "echo"


class BenchInference(InferenceProvider):
    def __init__(self, config: BenchConfig) -> None:
        self.config = config

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def register_model(self, model: Any) -> Any:
        return model

    async def unregister_model(self, model_id: str) -> None:
        pass

    async def list_models(self) -> None:
        return None

    async def should_refresh_models(self) -> bool:
        return False

    async def openai_chat_completion(self, params: OpenAIChatCompletionRequestWithExtraBody) -> Any:
        content = params.messages[-1].content
        text = content if isinstance(content, str) else str(content)
        if params.stream:
            return self._chunks(params.model, int(text))
        return OpenAIChatCompletion(
            id="b1",
            created=int(time.time()),
            model=params.model,
            choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        )

    async def _chunks(self, model: str, count: int) -> AsyncIterator[OpenAIChatCompletionChunk]:
        created = int(time.time())
        for i in range(count):
            yield OpenAIChatCompletionChunk(
                id="b1",
                created=created,
                model=model,
                choices=[{"index": 0, "delta": {"role": "assistant", "content": f"w{i} "}}],
            )

    async def openai_completion(self, params: Any) -> Any:
        raise NotImplementedError("chat completions only")

    async def openai_embeddings(self, params: Any) -> Any:
        raise NotImplementedError("chat completions only")


async def get_adapter_impl(config: BenchConfig, deps: dict[Any, Any]) -> BenchInference:
    return BenchInference(config)
