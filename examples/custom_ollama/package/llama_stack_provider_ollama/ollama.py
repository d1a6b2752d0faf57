"""OpenAI-compatible inference methods backed by an Ollama server, through the `ollama` client library."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from ollama import AsyncClient

from hostel_sdk import request_provider_data
from llama_stack_provider_ollama.config import OllamaImplConfig


def _headers() -> dict[str, str]:
    data = request_provider_data()
    key = getattr(data, "ollama_api_key", None)
    return {"Authorization": f"Bearer {key}"} if key else {}


class OllamaInferenceAdapter:
    """Serves ``openai_chat_completion``, ``openai_completion`` and ``openai_embeddings``."""

    def __init__(self, config: OllamaImplConfig) -> None:
        self.config = config

    async def initialize(self) -> None:
        """Nothing to open: a client is made per request, so provider data can set its headers."""

    def _client(self) -> AsyncClient:
        return AsyncClient(host=self.config.url, timeout=self.config.timeout_s, headers=_headers())

    async def health(self) -> dict[str, str]:
        """Llama Stack's health(): OK when the Ollama server answers."""
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{self.config.url}/api/tags") as response:
                if response.status == 200:
                    return {"status": "OK"}
                return {"status": "Error", "message": f"Ollama answered HTTP {response.status}"}
        except aiohttp.ClientError as exc:
            return {"status": "Error", "message": f"Ollama at {self.config.url} is unreachable: {exc}"}

    async def list_models(self) -> list[str]:
        """The models the Ollama server has."""
        listing = await self._client().list()
        return [m.model for m in listing.models if m.model]

    async def openai_chat_completion(
        self,
        model: str,
        messages: list[dict[str, Any]],
        stream: bool = False,
        temperature: float | None = None,
        **_: Any,
    ) -> Any:
        """OpenAI chat completion (a stream of chunks when ``stream``)."""
        options = {"temperature": temperature} if temperature is not None else {}
        if stream:
            return self._chat_stream(model, messages, options)
        reply = await self._client().chat(model=model, messages=messages, options=options, stream=False)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.message.content},
                    "finish_reason": reply.done_reason or "stop",
                }
            ],
            "usage": _usage(reply.prompt_eval_count, reply.eval_count),
        }

    async def _chat_stream(
        self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]
    ) -> AsyncIterator[Any]:
        chat_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        async for part in await self._client().chat(model=model, messages=messages, options=options, stream=True):
            yield {
                "id": chat_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": part.message.content or ""},
                        "finish_reason": (part.done_reason or "stop") if part.done else None,
                    }
                ],
            }

    async def openai_completion(self, model: str, prompt: str, stream: bool = False, **_: Any) -> Any:
        """OpenAI text completion."""
        reply = await self._client().generate(model=model, prompt=prompt, stream=False)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "text": reply.response, "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(reply.prompt_eval_count, reply.eval_count),
        }

    async def openai_embeddings(self, model: str, input: str | list[str], **_: Any) -> Any:
        """OpenAI embeddings."""
        texts = [input] if isinstance(input, str) else list(input)
        reply = await self._client().embed(model=model, input=texts)
        return {
            "object": "list",
            "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": list(v)} for i, v in enumerate(reply.embeddings)],
            "usage": {
                "prompt_tokens": sum(len(t.split()) for t in texts),
                "total_tokens": sum(len(t.split()) for t in texts),
            },
        }

    async def shutdown(self) -> None:
        """Nothing to close."""


def _usage(prompt: int | None, completion: int | None) -> dict[str, int]:
    prompt, completion = prompt or 0, completion or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
