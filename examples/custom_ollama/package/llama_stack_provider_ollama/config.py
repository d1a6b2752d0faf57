"""Configuration of the custom Ollama provider."""

from __future__ import annotations

from pydantic import BaseModel


class OllamaImplConfig(BaseModel):
    """Where the Ollama server is."""

    url: str = "http://127.0.0.1:11434"
    timeout_s: float = 60.0


class OllamaProviderData(BaseModel):
    """Per-request provider data (X-LlamaStack-Provider-Data): e.g. a key for an authenticating proxy."""

    ollama_api_key: str | None = None
