"""A provider that traces as real ones do: its own spans, Llama Stack's is_recording() check, deps, streams."""

from __future__ import annotations

import asyncio
import ctypes
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from opentelemetry import baggage, trace

tracer = trace.get_tracer("hostel_otelprov")


class TracingProvider:
    def __init__(self, deps: dict[Any, Any]) -> None:
        self.deps = deps

    async def work(self, text: str) -> dict[str, Any]:
        # What Llama Stack's OpenAI-compatible adapters do before a streaming request (openai_compat.py):
        # ask the upstream for token usage only when the current span records.
        include_usage = trace.get_current_span().is_recording()
        with tracer.start_as_current_span("provider.work") as span:
            span.set_attribute("text", text)
            context = span.get_span_context()
            return {
                "include_usage": include_usage,
                "trace_id": format(context.trace_id, "032x"),
                "tenant": baggage.get_baggage("tenant"),
                "pid": os.getpid(),
            }

    async def chain(self, text: str) -> Any:
        with tracer.start_as_current_span("provider.chain"):
            return await self.deps["inference"].work(text=text)

    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            with tracer.start_as_current_span("provider.item"):
                yield i

    async def crash(self) -> None:
        os._exit(3)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # holds its place in the provider's admission, not its event loop

    async def block(self, seconds: float) -> None:
        """Hang the whole process (a C call holding the GIL): the liveness probe kills the worker."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            ctypes.PyDLL(None).sleep(max(int(left), 1))

    async def fetch(self, url: str) -> int:
        """An upstream call, as a provider makes to its model server (instrumented with telemetry.instrument)."""
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).status_code


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> TracingProvider:
    return TracingProvider(deps)
