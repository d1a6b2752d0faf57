"""A provider written against Llama Stack itself: its Api enum in deps, NeedsRequestProviderData."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import AsyncIterator
from typing import Any

from llama_stack.core.request_headers import NeedsRequestProviderData


class LlamaStackStyleProvider(NeedsRequestProviderData):
    def __init__(self, deps: dict[Any, Any]) -> None:
        self.deps = deps

    async def who_is_asking(self) -> Any:
        data = self.get_request_provider_data()
        return data.model_dump() if data is not None else None

    async def who_is_asking_each(self, n: int) -> AsyncIterator[Any]:
        """Reads the provider data as its items are taken, as a generator that calls its backend per item does."""
        for _ in range(n):
            await asyncio.sleep(0)
            data = self.get_request_provider_data()
            yield data.model_dump() if data is not None else None

    async def dep_keys(self) -> list[str]:
        return [f"{type(k).__module__}.{type(k).__name__}:{k.value}" for k in self.deps]

    async def greet_through_inference(self, name: str) -> Any:
        from llama_stack_api import Api

        return await self.deps[Api.inference].greet(name=name)

    async def list_runtime_tools(self, *args: Any, **kwargs: Any) -> Any:  # the ToolRuntime protocol
        return {"data": []}

    async def invoke_tool(self, *args: Any, **kwargs: Any) -> Any:
        return {"content": "nothing"}

    async def embedding_result_type(self) -> str:
        from llama_stack_api import Api

        reply = await self.deps[Api.inference].openai_embeddings(model="m", input="abc")
        return f"{type(reply).__name__}:{len(reply.data[0].embedding)}"

    async def authenticated_user(self) -> Any:
        from llama_stack.core.request_headers import get_authenticated_user

        user = get_authenticated_user()
        return None if user is None else {"type": type(user).__name__, "principal": user.principal,
                                          "attributes": user.attributes}  # fmt: skip

    async def llama_stack_version(self) -> str:
        return importlib.metadata.version("llama-stack")


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> LlamaStackStyleProvider:
    return LlamaStackStyleProvider(deps)
