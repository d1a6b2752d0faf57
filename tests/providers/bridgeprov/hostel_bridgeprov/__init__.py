"""An echo inference provider written the way a provider for its own Llama Stack version would be.

With llama-stack-api (Llama Stack >= 0.3) ``openai_chat_completion`` takes one request model; with
Llama Stack 0.2.x it takes keyword arguments. Replies name the Llama Stack version the provider sees.
A message "crash" makes the worker exit mid-request; "remember X" keeps X in the worker's memory, and "recall"
answers with what it keeps (state that lives in one process, as a provider's registries and caches do). Streamed,
"until closed PATH" yields a chunk every few milliseconds until its reader goes away, as a model generating for a
client does, then writes "closed" to PATH; "until closed busy PATH" the same without ever awaiting, as a local
model on the CPU.
"""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class EchoConfig(BaseModel):
    prefix: str = "echo"


def get_provider_spec() -> dict[str, Any]:
    return {
        "api": "inference",
        "provider_type": "remote::echo",
        "module": "hostel_bridgeprov",
        "config_class": "hostel_bridgeprov.EchoConfig",
        "pip_packages": [],
        "api_dependencies": [],
    }


def _llama_stack_version() -> str:
    for dist in ("llama-stack", "llama-stack-api"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "none"


LLAMA_STACK = _llama_stack_version()


_MEMORY: list[str] = []


def _last_content(messages: list[Any]) -> str:
    last = messages[-1]
    return str(last["content"] if isinstance(last, dict) else last.content)


def _reply_text(prefix: str, messages: list[Any]) -> str:
    content = _last_content(messages)
    if content == "crash":
        os._exit(7)
    if content.startswith("remember "):
        _MEMORY.append(content.removeprefix("remember "))
    if content == "recall":
        return f"{prefix} [pid {os.getpid()}] recalls: {', '.join(_MEMORY)}"
    return f"{prefix} from Llama Stack {LLAMA_STACK}: {content}"


try:  # Llama Stack >= 0.3: types in llama_stack_api, one request model per call
    from llama_stack_api import (
        InferenceProvider,
        OpenAIChatCompletion,
        OpenAIChatCompletionChunk,
        OpenAIChatCompletionRequestWithExtraBody,
    )

    NEW = True
except ImportError:  # Llama Stack 0.2.x
    from llama_stack.apis.inference import OpenAIChatCompletion, OpenAIChatCompletionChunk

    NEW = False


def _completion(model: str, text: str) -> Any:
    return OpenAIChatCompletion(
        id="c1",
        created=int(time.time()),
        model=model,
        choices=[
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}},
        ],
    )


async def _chunks(model: str, text: str) -> Any:
    words = text.split(" ")
    for i, word in enumerate(words):
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": word + " "},
                    "finish_reason": "stop" if i == len(words) - 1 else None,
                }
            ],
        }
        # Llama Stack 0.2's chunk type wants a finish_reason on every chunk; its providers passed the OpenAI
        # client's chunks through instead, as plain objects: so does this one there.
        yield OpenAIChatCompletionChunk(**chunk) if NEW else chunk


async def _until_closed(model: str, record: str, *, busy: bool) -> Any:
    try:
        while True:
            async for chunk in _chunks(model, "tick"):
                yield chunk
            if not busy:
                await asyncio.sleep(0.005)
    finally:
        Path(record).write_text("closed")


def _stream(model: str, messages: list[Any], text: str) -> Any:
    content = _last_content(messages)
    if content.startswith("until closed busy "):
        return _until_closed(model, content.removeprefix("until closed busy "), busy=True)
    if content.startswith("until closed "):
        return _until_closed(model, content.removeprefix("until closed "), busy=False)
    return _chunks(model, text)


class _Common:
    def __init__(self, config: EchoConfig) -> None:
        self.config = config

    async def initialize(self) -> None:
        pass

    async def register_model(self, model: Any) -> Any:
        return model

    async def list_models(self) -> None:
        return None

    async def should_refresh_models(self) -> bool:
        return False

    async def versions(self) -> dict[str, str]:
        return {"llama_stack": LLAMA_STACK, "pid": str(os.getpid())}


if NEW:

    class Echo(_Common, InferenceProvider):  # the protocol's other methods stay its stubs
        async def openai_chat_completion(self, params: OpenAIChatCompletionRequestWithExtraBody) -> Any:
            text = _reply_text(self.config.prefix, params.messages)
            return _stream(params.model, params.messages, text) if params.stream else _completion(params.model, text)

else:

    class Echo(_Common):  # type: ignore[no-redef]
        async def openai_chat_completion(
            self, model: str, messages: list[Any], stream: bool | None = False, **kwargs: Any
        ) -> Any:
            text = _reply_text(self.config.prefix, messages)
            return _stream(model, messages, text) if stream else _completion(model, text)


async def get_adapter_impl(config: EchoConfig, deps: dict[Any, Any]) -> Echo:
    impl = Echo(config)
    await impl.initialize()
    return impl
