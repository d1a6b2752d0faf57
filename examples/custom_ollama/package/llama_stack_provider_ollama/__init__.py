"""A remote inference provider for Ollama, as in the Llama Stack external-providers guide."""

from __future__ import annotations

from typing import Any

from llama_stack_provider_ollama.config import OllamaImplConfig


async def get_adapter_impl(config: OllamaImplConfig, _deps: dict[Any, Any]) -> Any:
    from llama_stack_provider_ollama.ollama import OllamaInferenceAdapter

    adapter = OllamaInferenceAdapter(config)
    await adapter.initialize()
    return adapter
