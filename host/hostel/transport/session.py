"""The host's end of Worker.Session: the calls to one worker multiplexed on one long-lived stream.

A new RPC per call costs both processes more than a small call itself; a frame on a stream that is
already open costs a fraction of it (docs/performance.md). Each call gets an id; the worker answers in
any order, and one reader task hands each reply to the call waiting for it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import grpc

from hostel_sdk import _messages as pb
from hostel_sdk._wire import SESSION_METADATA


class CallExpired(Exception):  # noqa: N818 - a signal between this module and its caller, never shown
    """The call's timeout passed; its worker was told to cancel it."""


def session_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """A failure of the session as the status a failed RPC would carry, for the one translation of statuses."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class Session:
    """One open Worker.Session. ``call`` raises ``grpc.aio.AioRpcError`` when the session fails under it."""

    def __init__(self, stub: Any) -> None:
        """Open the stream on ``stub`` (a ``WorkerStub``); needs a running event loop."""
        self._outbox: asyncio.Queue[pb.SessionRequest | None] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[pb.CallReply]] = {}
        self._ids = itertools.count(1)
        self.failure: grpc.aio.AioRpcError | None = None
        self._confirmed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._call = stub.session(self._frames())
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _frames(self) -> AsyncIterator[pb.SessionRequest]:
        # Nothing is written before the worker confirms the session: writing to a stream the server refused
        # can turn its UNIMPLEMENTED into INTERNAL (grpc/grpc#36066), and UNIMPLEMENTED is what says "no sessions".
        if not await self._confirmed:
            return
        while (frame := await self._outbox.get()) is not None:
            yield frame

    async def _read(self) -> None:
        failure = session_error(grpc.StatusCode.UNAVAILABLE, "the worker ended the session (it is stopping)")
        try:
            metadata = await self._call.initial_metadata()
            confirmed = any(key == SESSION_METADATA for key, _ in metadata or ())
            self._confirmed.set_result(confirmed)
            if not confirmed:
                code = await self._call.code()
                failure = session_error(
                    grpc.StatusCode.UNIMPLEMENTED if code == grpc.StatusCode.OK else code,
                    await self._call.details() or "the worker did not confirm the session",
                )
                return
            async for frame in self._call:
                waiter = self._waiting.pop(frame.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame.reply)
        except grpc.aio.AioRpcError as exc:
            failure = exc
        except asyncio.CancelledError:
            failure = session_error(grpc.StatusCode.CANCELLED, "the connection to the worker was closed")
            raise
        finally:
            if not self._confirmed.done():
                self._confirmed.set_result(False)
            self.failure = failure
            waiting, self._waiting = self._waiting, {}
            for waiter in waiting.values():
                if not waiter.done():
                    waiter.set_exception(failure)

    async def call(self, request: pb.CallRequest, timeout: float | None) -> pb.CallReply:
        """Send ``request`` and wait for its reply; raise ``CallExpired`` after ``timeout`` seconds."""
        if self.failure is not None:
            raise self.failure
        call_id = next(self._ids)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[pb.CallReply] = loop.create_future()
        self._waiting[call_id] = reply
        self._outbox.put_nowait(pb.SessionRequest(call_id, call=request))
        # One loop timer: cheaper than a task or a gRPC deadline per call.
        timer = None if timeout is None else loop.call_later(timeout, self._expire, call_id)
        try:
            return await reply
        except asyncio.CancelledError:
            self._cancel(call_id)  # the caller gave up: so does the provider
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _cancel(self, call_id: int) -> bool:
        waiter = self._waiting.pop(call_id, None)
        if waiter is None:
            return False
        if self.failure is None:
            self._outbox.put_nowait(pb.SessionRequest(call_id, cancel=True))
        return True

    def _expire(self, call_id: int) -> None:
        waiter = self._waiting.get(call_id)
        if self._cancel(call_id) and waiter is not None and not waiter.done():
            waiter.set_exception(CallExpired())

    async def close(self, grace: float | None = None) -> None:
        """End the host's side; the worker ends the stream once its calls are answered (waited for up to
        ``grace`` seconds, then the stream is cancelled)."""
        self._outbox.put_nowait(None)
        if grace:
            await asyncio.wait({self._reader}, timeout=grace)
        if not self._reader.done():
            self._call.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
