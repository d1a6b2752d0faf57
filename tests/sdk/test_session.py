"""hostel_sdk._session.serve: the worker's side of Worker.Session, driven with frames instead of a gRPC stream."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

from hostel_sdk import _messages as pb
from hostel_sdk import _session


def _call(method: str) -> pb.CallRequest:
    return pb.CallRequest(method=method)


async def test_each_call_is_answered_by_its_id_and_a_cancel_frame_stops_a_waiting_one() -> None:
    events: list[str] = []
    release = asyncio.Event()

    async def answer(request: pb.CallRequest) -> pb.CallReply:
        events.append(f"answer {request.method}")
        if request.method == "slow":
            await release.wait()
        if request.method == "stuck":
            await asyncio.Event().wait()
        return pb.CallReply(value_json=request.method.encode())

    async def frames() -> AsyncIterator[pb.SessionRequest]:
        yield pb.SessionRequest(1, call=_call("slow"))
        events.append("after 1")
        yield pb.SessionRequest(2, call=_call("quick"))
        events.append("after 2")
        yield pb.SessionRequest(3, call=_call("stuck"))
        yield pb.SessionRequest(3, cancel=True)
        release.set()

    replies = [(reply.id, bytes(reply.reply.value_json)) async for reply in _session.serve(
        frames(), answer, asyncio.Event()
    )]  # fmt: skip

    assert sorted(replies) == [(1, b"slow"), (2, b"quick")]  # the cancelled call is not answered
    if sys.version_info >= (3, 12):
        # Started eagerly: each call runs as its frame is taken, before the next frame is asked for.
        assert events[:4] == ["answer slow", "after 1", "answer quick", "after 2"]
    else:  # a task per call, started by the loop once the frames at hand are taken
        assert events.index("after 1") < events.index("answer slow")


async def test_a_call_that_finishes_without_waiting_is_answered_before_the_host_ends_its_side() -> None:
    taken = asyncio.Event()

    async def answer(request: pb.CallRequest) -> pb.CallReply:
        return pb.CallReply(value_json=b"1")

    async def frames() -> AsyncIterator[pb.SessionRequest]:
        yield pb.SessionRequest(7, call=_call("now"))
        taken.set()
        await asyncio.Event().wait()  # the host keeps its side open

    stream = _session.serve(frames(), answer, asyncio.Event())
    reply = await asyncio.wait_for(stream.__anext__(), timeout=10)
    assert taken.is_set() and (reply.id, bytes(reply.reply.value_json)) == (7, b"1")
    await stream.aclose()
