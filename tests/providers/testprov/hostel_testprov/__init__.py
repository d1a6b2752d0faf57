"""A provider for hostel's tests: values, streams, errors, big payloads, provider data, crashes."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from hostel_sdk import request_provider_data


class Config(BaseModel):
    greeting: str = "hello"
    fail_in_factory: bool = False


class Item(BaseModel):
    name: str
    size: int


class ProviderData(BaseModel):
    api_key: str


class QuotaError(ValueError):
    """A provider's own error carrying its HTTP status, as OGX's errors do."""

    status_code = 429


class UnsupportedModeError(ValueError):
    """A provider's own subclass of ValueError, with no status of its own."""

    def __init__(self, mode: str) -> None:  # an __init__ the other side cannot call with the message alone
        super().__init__(f"mode {mode!r} is not supported")


class TestProvider:
    model_store: Any = None  # set by the stack, as Llama Stack does for inference providers
    shield_store: Any = None  # and for safety providers

    async def shield_info(self, shield_id: str) -> dict[str, Any]:
        shield = await self.shield_store.get_shield(shield_id)
        return {"provider_resource_id": shield.provider_resource_id, "params": shield.params}

    def __init__(self, config: Config) -> None:
        self.config = config

    async def model_info(self, model_id: str) -> dict[str, Any]:
        model = await self.model_store.get_model(model_id)
        return {"provider_resource_id": model.provider_resource_id, "known": await self.model_store.has_model(model_id)}

    async def greet(self, name: str) -> str:
        return f"{self.config.greeting}, {name}"

    async def echo(self, value: Any) -> Any:
        return value

    async def keywords(self, /, method: str, **kwargs: Any) -> dict[str, Any]:
        return {"method": method, **kwargs}  # arguments named like the host's own parameters

    def add(self, a: int, b: int) -> int:
        return a + b

    async def inspect_item(self, item: Item) -> dict[str, Any]:
        return {"type": type(item).__name__, "double": item.size * 2, "name": item.name}

    async def make_item(self, name: str) -> Item:
        return Item(name=name, size=len(name))

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def busy_stream(self, n: int, size: int, busy_s: float) -> AsyncIterator[dict[str, Any]]:
        """Items that take CPU to make and never await (a tokenizer, a local model): each says when it was made."""
        for i in range(n):
            until = time.monotonic() + busy_s
            while time.monotonic() < until:
                pass
            yield {"i": i, "made": time.monotonic(), "pad": "x" * size}

    async def timed_stream(self, n: int, interval: float) -> AsyncIterator[float]:
        for _ in range(n):
            await asyncio.sleep(interval)
            yield time.time()

    async def maybe_stream(self, n: int, stream: bool = False) -> Any:
        if not stream:
            return list(range(n))
        return self.count(n)

    async def fail(self, message: str) -> None:
        raise ValueError(message)

    async def fail_typed(self, kind: str) -> None:
        if kind == "quota":
            raise QuotaError("over quota")
        raise UnsupportedModeError(kind)

    async def deny(self) -> None:
        raise PermissionError("not for you")

    async def uses(self, module: str) -> str:
        """Imports ``module`` only when called, as providers do with heavy or optional packages."""
        return importlib.import_module(module).__name__

    async def unimplemented(self) -> None:
        raise NotImplementedError("later")

    async def explode(self) -> None:
        raise RuntimeError("internal trouble")

    async def fail_mid_stream(self, after: int) -> AsyncIterator[int]:
        for i in range(after):
            yield i
        raise RuntimeError(f"stream broke after {after}")

    async def redact(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:  # in place, returning nothing, as a redacting shield does
            message["content"] = message["content"].replace("secret", "[REDACTED]")

    async def rename(self, item: Item, name: str) -> None:
        item.name = name

    async def blob(self, size: int) -> str:
        return "x" * size

    async def raw_bytes(self, size: int) -> bytes:
        return bytes(i % 251 for i in range(size))

    async def length(self, data: str) -> int:
        return len(data)

    async def surroundings(self, directory: str) -> dict[str, Any]:
        """What this worker can see: its environment's names and a directory's entries."""
        try:
            entries: Any = sorted(os.listdir(directory))
        except OSError as exc:
            entries = exc.strerror
        return {"env": sorted(os.environ), "entries": entries, "uid": os.getuid()}

    async def whoami(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "prefix": sys.prefix, "base_prefix": sys.base_prefix,
                "python": platform.python_version()}  # fmt: skip

    async def burn(self, ms: float) -> int:
        """CPU-bound work holding the event loop and the GIL, as real Python work does; its worker's pid."""
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
        return os.getpid()

    async def sleep(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    async def hog(self, megabytes: int, hold_s: float = 30, keep_after_kb: int = 0) -> int:
        """Allocate, touch, hold and free ``megabytes``; ``keep_after_kb`` allocated after it are kept, so that the
        buffer, once freed, is not the heap's top (memory glibc would keep however large)."""
        data = bytearray(megabytes * 1024 * 1024)
        for i in range(0, len(data), 4096):  # touch every page so it is resident
            data[i] = 1
        self.kept = [bytes(128 << 10) for _ in range(keep_after_kb // 128)]
        await asyncio.sleep(hold_s)
        return len(data)

    async def crash(self, code: int = 3) -> None:
        print("about to crash", file=sys.stderr, flush=True)
        os._exit(code)

    async def noisy(self) -> str:
        print("hostel|1|unix|/not/a/socket|1|fake", flush=True)  # must not be taken for a handshake
        return "ok"

    async def which_model(self, model: str) -> dict[str, Any]:
        return {"model": model, "greeting": self.config.greeting}

    async def sleep_tracked(self, seconds: float, record: str) -> float:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            with open(record, "w") as out:
                out.write("cancelled")
            raise
        return seconds

    async def count_tracked(self, n: int, record: str, delay: float = 0.05) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
                await asyncio.sleep(delay)
        finally:
            with open(record, "w") as out:
                out.write("closed")

    async def openai_chat_completion(
        self, model: str, messages: list[dict[str, Any]], stream: bool = False, **extra: Any
    ) -> Any:
        text = f"{self.config.greeting} from {model}: {messages[-1]['content']}"
        if stream:
            return self._chat_chunks(model, text)
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    async def _chat_chunks(self, model: str, text: str) -> AsyncIterator[dict[str, Any]]:
        for word in text.split(" "):
            yield {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            }

    async def openai_completion(self, model: str, prompt: str, stream: bool = False, **extra: Any) -> Any:
        return {
            "id": "cmpl-test",
            "object": "text_completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "text": prompt[::-1], "finish_reason": "stop", "logprobs": None}],
        }

    async def openai_embeddings(self, model: str, input: str | list[str], **extra: Any) -> Any:
        texts = [input] if isinstance(input, str) else input
        return {
            "object": "list",
            "model": model,
            "data": [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), float(sum(map(ord, t)) % 97), 1.0]}
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }

    async def caller(self) -> Any:
        """The authenticated user the call came with (where Llama Stack keeps it in the raw provider data)."""
        from hostel_sdk import _context

        raw = _context._request.get().raw_provider_data
        data = json.loads(bytes(raw)) if raw else {}
        return data.get("__authenticated_user"), data.get("api_key")

    async def provider_data(self) -> Any:
        data = request_provider_data()
        return data.model_dump() if isinstance(data, BaseModel) else data


async def get_provider_impl(config: Config, deps: dict[Any, Any]) -> TestProvider:
    if config.fail_in_factory:
        raise RuntimeError("factory refused to build")
    return TestProvider(config)


async def get_adapter_impl(config: Config, _deps: dict[Any, Any]) -> TestProvider:
    return await get_provider_impl(config, _deps)
