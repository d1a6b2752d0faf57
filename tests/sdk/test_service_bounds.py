"""The worker's own bounds: a stream nobody reads pauses its generator; unopened streams are capped."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from typing import Any

from hostel_sdk import _messages as pb
from hostel_sdk import _service
from hostel_sdk._context import RequestContext
from hostel_sdk._service import ProviderService


async def test_a_stream_whose_reader_stopped_pauses_the_generator() -> None:
    produced = 0

    async def endless() -> AsyncIterator[str]:
        nonlocal produced
        while True:
            produced += 1
            yield "x" * 10_000

    replies = _service._stream(_service._Produced(endless(), contextvars.copy_context()), RequestContext())
    first = await replies.__anext__()  # the reader takes one message, then stops reading
    assert first.WhichOneof("kind") == "items"
    await asyncio.sleep(0.3)
    ahead = produced * 10_000
    assert ahead < _service._MAX_PENDING_BYTES + 2 * _service._BATCH_BYTES, f"{ahead} bytes produced ahead"
    await asyncio.sleep(0.2)
    assert produced * 10_000 == ahead  # and it stays paused
    await replies.aclose()


class _Context:
    def time_remaining(self) -> float | None:
        return None


class _Streams:
    async def items(self) -> AsyncIterator[int]:
        yield 1


async def test_streams_never_opened_are_capped() -> None:
    service = ProviderService(_Streams())
    context: Any = _Context()
    request = pb.CallRequest(method="items")
    for _ in range(_service._MAX_PARKED_STREAMS):
        assert (await service.call_unary(request, context)).WhichOneof("kind") == "stream_handle"
    refused = await service.call_unary(request, context)
    assert refused.WhichOneof("kind") == "error" and "waiting to be opened" in refused.error.message
    for handle in list(service._parked):
        service._expire(handle)
    await asyncio.sleep(0)
