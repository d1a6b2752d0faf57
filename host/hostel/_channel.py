"""The narrow seam between the host's policy and a worker: one ``call`` that returns a value or a stream.

``GrpcChannel`` speaks the Worker service over a Unix socket; tests may substitute any object with the
same two methods.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import grpc

from hostel import _grpc_errors
from hostel.errors import HostelError, PayloadTooLargeError, WorkerProtocolError
from hostel_sdk import codec
from hostel_sdk._proto import worker_pb2 as pb
from hostel_sdk._wire import WorkerStub, channel_options


class Channel(Protocol):
    """How the host reaches one worker."""

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Call ``method``; return its JSON value, or an async iterator of items for a stream."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...


class ReplyStream(AsyncIterator[Any]):
    """The items of a streamed result. Closing it (or leaving ``async with``) cancels the call in the worker."""

    def __init__(self, call: Any, channel: GrpcChannel, method: str) -> None:
        self._call = call
        self._channel = channel
        self._method = method
        self._buffer: collections.deque[bytes] = collections.deque()
        self._done = False

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            reply = await self._channel._read(self._call, self._method)
            if reply is None:
                self._done = True
                raise StopAsyncIteration
            kind = reply.WhichOneof("kind")
            if kind == "items":
                self._buffer.extend(reply.items.items_json)
            elif kind == "error":
                self._done = True
                raise self._channel._remote(reply.error, self._method)
            else:
                self._done = True
                self._call.cancel()
                raise WorkerProtocolError(
                    f"unexpected {kind!r} reply inside a stream from provider {self._channel.provider_id!r}"
                )
        return codec.loads(self._buffer.popleft())

    async def aclose(self) -> None:
        """Stop the stream; the provider's generator is cancelled."""
        self._done = True
        self._buffer.clear()
        self._call.cancel()

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class GrpcChannel:
    """A ``Channel`` over ``grpc.aio`` to a worker's socket."""

    def __init__(
        self,
        provider_id: str,
        target: str,
        *,
        max_message_bytes: int,
        explain: Callable[[HostelError], Awaitable[HostelError]] | None = None,
    ) -> None:
        """``explain`` may replace a transport error with a better one (e.g. the worker crashed)."""
        self.provider_id = provider_id
        self._explain = explain
        self._max = max_message_bytes
        self._channel = grpc.aio.insecure_channel(target, options=channel_options(max_message_bytes))
        self.stub = WorkerStub(self._channel)

    def _remote(self, error: pb.RemoteError, method: str) -> HostelError:
        return _grpc_errors.from_remote(error, provider_id=self.provider_id, method=method)

    async def _read(self, call: Any, method: str) -> pb.CallReply | None:
        try:
            reply = await call.read()
        except grpc.aio.AioRpcError as exc:
            error = _grpc_errors.from_status(exc, provider_id=self.provider_id, method=method)
            if self._explain is not None:
                error = await self._explain(error)
            raise error from None
        except asyncio.CancelledError:
            call.cancel()  # the caller was cancelled: cancel the call in the worker too
            raise
        return None if reply is grpc.aio.EOF else reply

    def _encode(self, what: str, value: Any, method: str) -> bytes:
        data = codec.dumps(value)
        if len(data) > self._max:
            raise PayloadTooLargeError(
                f"{what} of {method}() for provider {self.provider_id!r} is {len(data) / 2**20:.1f} MiB, over the "
                f"{self._max / 2**20:.0f} MiB limit; raise hostel.max_message_mb or send less",
                provider_id=self.provider_id,
            )
        return data

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Call ``method`` on the worker; a value, or a ``ReplyStream`` for a streamed result."""
        request = pb.CallRequest(
            method=method,
            args_json=self._encode("positional arguments", list(args), method) if args else b"",
            kwargs_json=self._encode("arguments", dict(kwargs), method) if kwargs else b"",
            provider_data_json=codec.dumps(provider_data) if provider_data is not None else b"",
        )
        call = self.stub.call(request, timeout=timeout)
        reply = await self._read(call, method)
        if reply is None:
            raise WorkerProtocolError(
                f"provider {self.provider_id!r} ended {method}() without a reply", provider_id=self.provider_id
            )
        kind = reply.WhichOneof("kind")
        if kind == "value_json":
            return codec.loads(reply.value_json)
        if kind == "error":
            raise self._remote(reply.error, method)
        if kind == "stream_begin":
            return ReplyStream(call, self, method)
        call.cancel()
        raise WorkerProtocolError(
            f"provider {self.provider_id!r} sent an unexpected {kind!r} reply", provider_id=self.provider_id
        )

    async def close(self) -> None:
        """Close the gRPC channel."""
        await self._channel.close()
