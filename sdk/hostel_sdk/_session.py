"""Worker.Session on the worker's side: many calls on one stream, each run as its own task.

A new RPC per call costs the worker more than a small call itself (stream setup, headers, a task and
its bookkeeping in gRPC); frames on a stream that is already open cost a fraction of that. Replies go
back in the order calls finish, each tagged with its call's id.

On Python 3.12+ a call's task starts eagerly: it runs as the frame is taken, and a call that finishes
without waiting (a provider answering from memory) has its reply queued at once, two turns of the event
loop sooner than a task scheduled to start and then to report (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from hostel_sdk import _messages as pb

logger = logging.getLogger(__name__)

Answer = Callable[[pb.CallRequest], Coroutine[Any, Any, pb.CallReply]]


def _start(call: Coroutine[Any, Any, pb.CallReply]) -> asyncio.Task[pb.CallReply]:
    """A task for ``call``, run at once up to its first wait where Python can (3.12+)."""
    if sys.version_info >= (3, 12):
        return asyncio.eager_task_factory(asyncio.get_running_loop(), call)
    return asyncio.create_task(call)


async def serve(
    frames: AsyncIterator[pb.SessionRequest], answer: Answer, draining: asyncio.Event
) -> AsyncIterator[pb.SessionReply]:
    """Run each call frame through ``answer`` (which must not raise) and yield its reply; honour cancel frames.

    Ends once the host has ended its side, or ``draining`` is set, and every call taken has been answered.
    Closing this generator (the RPC was cancelled, the host went away) cancels the calls still running.
    """
    replies: asyncio.Queue[pb.SessionReply | None] = asyncio.Queue()
    running: dict[int, asyncio.Task[pb.CallReply]] = {}
    taking = True

    def finished(call_id: int, task: asyncio.Task[pb.CallReply]) -> None:
        running.pop(call_id, None)
        if not task.cancelled():  # a cancelled call is not answered: its caller gave up on it
            replies.put_nowait(pb.SessionReply(call_id, task.result()))
        if not taking and not running:
            replies.put_nowait(None)

    async def take() -> None:
        nonlocal taking
        try:
            async for frame in frames:
                if frame.cancel:
                    task = running.get(frame.id)
                    if task is not None:
                        task.cancel()
                elif frame.call is not None and frame.id not in running:
                    task = _start(answer(frame.call))
                    if task.done():
                        finished(frame.id, task)
                    else:
                        running[frame.id] = task
                        task.add_done_callback(functools.partial(finished, frame.id))
        except Exception as exc:  # noqa: BLE001 - the host's side broke: its calls are cancelled as the RPC ends
            logger.debug("session request stream failed: %r", exc)
        finally:
            taking = False
            if not running:
                replies.put_nowait(None)

    taker = asyncio.create_task(take())
    stop_taking = asyncio.create_task(draining.wait())
    stop_taking.add_done_callback(lambda _: taker.cancel())
    try:
        while (reply := await replies.get()) is not None:
            yield reply
    finally:
        stop_taking.cancel()
        taker.cancel()
        for task in list(running.values()):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await taker
