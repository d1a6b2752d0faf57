"""A vector_io-style inline provider that depends on inference and calls it through ``deps``."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from hostel_sdk import Api


class StoreConfig(BaseModel):
    dimension: int = 4


class Store:
    def __init__(self, config: StoreConfig, deps: dict[Any, Any]) -> None:
        self.config = config
        self.deps = deps
        self.inference = deps.get(Api.inference)

    async def dep_keys(self) -> list[str]:
        return [f"{type(k).__module__}.{type(k).__name__}:{k.value}" for k in self.deps]

    async def inference_has(self, names: list[str]) -> list[bool]:
        """``hasattr`` on the inference this provider's deps hold, as a provider probing its server's objects does."""
        return [hasattr(self.inference, name) for name in names]

    async def greet_through_inference(self, name: str) -> str:
        return await self.inference.greet(name=name)

    async def stream_through_inference(self, n: int) -> list[int]:
        return [x async for x in await self.inference.count(n=n)]

    async def relay_stream(self, n: int) -> Any:
        async for x in await self.inference.count(n=n):
            yield x * 10

    async def provider_data_seen_by_inference(self) -> Any:
        return await self.inference.provider_data()

    async def inference_error(self) -> str:
        try:
            await self.inference.fail(message="from inference")
        except ValueError as exc:
            return f"ValueError: {exc}"
        return "no error"

    async def typed_inference_error(self, kind: str) -> list[Any]:
        """The dependency's own exception type, as this provider would catch it in process."""
        from hostel_testprov import QuotaError, UnsupportedModeError

        try:
            await self.inference.fail_typed(kind=kind)
        except (QuotaError, UnsupportedModeError) as exc:
            return [type(exc).__name__, str(exc), getattr(exc, "status_code", None)]
        except Exception as exc:  # noqa: BLE001 - what arrived instead, for the test to show
            return ["other", repr(exc), None]
        return ["no error", "", None]

    async def file_content_through_deps(self, file_id: str) -> list[Any]:
        """A file's content from the files API this provider depends on (a Response there: bytes beside the call)."""
        import hashlib

        result = await self.deps[Api.files].openai_retrieve_file_content(request={"file_id": file_id})
        data = result.body if hasattr(result, "body") else await result.read()
        return [type(result).__name__, len(data), hashlib.sha256(data).hexdigest()]

    async def upload_through_deps(self, size: int) -> dict[str, Any]:
        """A file this provider makes, stored through the files API it depends on (bytes beside the call)."""
        import io

        data = io.BytesIO(bytes(i % 253 for i in range(size)))
        data.name = "made.bin"
        return await self.deps[Api.files].openai_upload_file(request={"purpose": "batch"}, file=data)  # type: ignore[no-any-return]

    async def call_undeclared_api(self) -> str:
        try:
            await self.inference._client.call("safety", "run_shield", (), {})
        except PermissionError as exc:
            return f"PermissionError: {exc}"
        return "allowed"

    async def greet_from_another_loop(self, name: str) -> Any:
        # As ragas does: work in a thread with an event loop of its own, calling deps from there.
        async def in_thread() -> tuple[str, list[int]]:
            greeting = await self.inference.greet(name=name)
            items = [x async for x in await self.inference.count(n=3)]
            return greeting, items

        return await asyncio.to_thread(lambda: asyncio.run(in_thread()))

    async def slow_inference(self, seconds: float) -> Any:
        return await self.inference.sleep(seconds=seconds)


async def get_provider_impl(config: StoreConfig, deps: dict[Any, Any]) -> Store:
    return Store(config, deps)
