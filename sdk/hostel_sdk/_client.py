"""Reading a Call reply stream into a value or an async iterator; shared by the host and the worker side.

Each side passes its own ``Translator`` so that failures surface as its own exceptions: hostel errors
on the host, plain Python exceptions (``ValueError``, ``PermissionError`` …) inside a provider.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import grpc

from hostel_sdk import _blobs, _exceptions, codec
from hostel_sdk import _messages as pb


class Translator(Protocol):
    """Turns failures of one call into the caller's exceptions."""

    def remote(self, error: pb.RemoteError) -> BaseException:
        """An in-band error reply."""
        ...

    async def status(self, error: grpc.aio.AioRpcError) -> BaseException:
        """A failed RPC (the transport or the peer failed)."""
        ...

    def protocol(self, message: str) -> BaseException:
        """A reply stream that broke the protocol."""
        ...

    def timeout(self, seconds: float) -> BaseException:
        """The call's deadline passed (the call was cancelled at the other end)."""
        ...


async def _read(call: Any, errors: Translator) -> pb.CallReply | None:
    try:
        reply = await call.read()
    except grpc.aio.AioRpcError as exc:
        raise await errors.status(exc) from None
    except asyncio.CancelledError:
        call.cancel()  # the caller was cancelled: cancel the call at the other end too
        raise
    return None if reply is grpc.aio.EOF else reply


OpenBlobs = Callable[[Any], Any]


async def result(call: Any, errors: Translator, open_blobs: OpenBlobs | None = None) -> Any:
    """The call's value, or a ``ReplyStream`` when the other side returned a stream. ``open_blobs`` turns the
    blob markers of a value into blobs (``hostel_sdk._blobs.Transfer.values``)."""
    reply = await _read(call, errors)
    if reply is None:
        raise errors.protocol("the call ended without a reply")
    if reply.WhichOneof("kind") == "stream_begin":
        return ReplyStream(call, errors)
    call.cancel()  # a value or an error ends the call; anything else is a protocol error
    return _settle(reply, errors, open_blobs)


def _settle(reply: pb.CallReply, errors: Translator, open_blobs: OpenBlobs | None = None) -> Any:
    """The value of a one-reply result, or raise its error."""
    kind = reply.WhichOneof("kind")
    if kind == "value_json":
        value = codec.loads(reply.value_json)
        if open_blobs is not None and _blobs.has_markers(reply.value_json):
            return open_blobs(value)
        return value
    if kind == "value_text":
        return codec.decode_text(reply.value_text)
    if kind == "error":
        raise errors.remote(reply.error)
    raise errors.protocol(f"unexpected {kind!r} reply")


def apply_mutations(mutations: Any, args: Any, kwargs: Any) -> None:
    """Change the caller's own arguments in place as the provider changed its copies (dicts and lists)."""
    for key, value in mutations.items():
        target = args[int(key)] if key.isdigit() and int(key) < len(args) else kwargs.get(key)
        if isinstance(target, dict) and isinstance(value, dict):
            target.clear()
            target.update(value)
        elif isinstance(target, list) and isinstance(value, list):
            target[:] = value


async def unary(
    stub: Any,
    request: pb.CallRequest,
    *,
    timeout: float | None,
    errors: Translator,
    on_mutations: Callable[[Any], None] | None = None,
    open_blobs: OpenBlobs | None = None,
) -> Any:
    """Call through Worker.CallUnary: the value, or a ``ReplyStream`` read through OpenStream.

    A stream costs one extra round trip; a value (the common case) takes the cheaper unary path.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    call = stub.call_unary(request)
    # One loop timer that cancels the RPC: cheaper than a gRPC deadline, with the same effect in the worker.
    expired: list[bool] = []
    timer = None
    if timeout is not None:
        request.timeout_s = timeout
        timer = asyncio.get_running_loop().call_later(timeout, _expire, call, expired)
    try:
        reply = await call
    except grpc.aio.AioRpcError as exc:
        raise await errors.status(exc) from None
    except asyncio.CancelledError:
        if expired:  # our timer cancelled the call, not someone cancelling this task
            raise errors.timeout(timeout or 0.0) from None
        call.cancel()
        raise
    finally:
        if timer is not None:
            timer.cancel()
    return reply_value(stub, reply, deadline=deadline, errors=errors, on_mutations=on_mutations, open_blobs=open_blobs)


def reply_value(
    stub: Any,
    reply: pb.CallReply,
    *,
    deadline: float | None,
    errors: Translator,
    on_mutations: Callable[[Any], None] | None = None,
    open_blobs: OpenBlobs | None = None,
) -> Any:
    """The value a CallUnary reply carries (raising its error), or a ``ReplyStream`` opened on its handle.

    ``deadline`` (monotonic seconds) bounds the stream, as the call's timeout bounded the call.
    """
    if reply.WhichOneof("kind") == "stream_handle":
        remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
        return ReplyStream(stub.open_stream(reply.stream_handle, timeout=remaining), errors)
    value = _settle(reply, errors, open_blobs)
    if reply.mutations_json and on_mutations is not None:
        on_mutations(codec.loads(reply.mutations_json))
    return value


def _expire(call: Any, expired: list[bool]) -> None:
    expired.append(True)
    call.cancel()


class ReplyStream(AsyncIterator[Any]):
    """The items of a streamed result. Closing it (or leaving ``async with``) cancels the call."""

    def __init__(self, call: Any, errors: Translator) -> None:
        self._call = call
        self._errors = errors
        self._buffer: collections.deque[bytes] = collections.deque()
        self._done = False
        self._decode: Callable[[bytes], Any] = codec.loads

    def decode_with(self, decode: Callable[[bytes], Any]) -> None:
        """Make each item from its JSON with ``decode`` instead of ``codec.loads``: a reader that wants the items as
        its own types (the Llama Stack bridge: the server's models) validates the JSON into them in one step."""
        self._decode = decode

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            reply = await _read(self._call, self._errors)
            if reply is None:
                self._done = True
                raise StopAsyncIteration
            kind = reply.WhichOneof("kind")
            if kind == "items":
                self._buffer.extend(reply.items.items_json)
            elif kind == "error":
                self._done = True
                raise self._errors.remote(reply.error)
            else:
                self._done = True
                self._call.cancel()
                raise self._errors.protocol(f"unexpected {kind!r} reply inside a stream")
        return self._decode(self._buffer.popleft())

    def take_received(self, limit: int) -> list[Any]:
        """Up to ``limit`` items already received, without waiting for more (a reader that hands items on in
        batches takes these after each ``__anext__``)."""
        decode, take = self._decode, self._buffer.popleft
        return [decode(take()) for _ in range(min(limit, len(self._buffer)))]

    async def aclose(self) -> None:
        """Stop the stream; the producer at the other end is cancelled."""
        self._done = True
        self._buffer.clear()
        self._call.cancel()

    async def __aenter__(self) -> ReplyStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class StreamWrapper:
    """Base of a stream that wraps a ``ReplyStream`` (or another wrapper) to act when it ends: what it does not
    change, it passes on to the stream it wraps (``_stream``)."""

    _stream: Any

    def take_received(self, limit: int) -> list[Any]:
        """Items already received, without waiting (``ReplyStream.take_received``)."""
        take = getattr(self._stream, "take_received", None)
        return take(limit) if take is not None else []

    def decode_with(self, decode: Callable[[bytes], Any]) -> bool:
        """Have the wrapped stream make its items with ``decode`` (``ReplyStream.decode_with``); whether it can."""
        return decodes_with(self._stream, decode)


def decodes_with(stream: Any, decode: Callable[[bytes], Any]) -> bool:
    """Have ``stream`` (a ``ReplyStream``, or a ``StreamWrapper`` around one) make its items from their JSON with
    ``decode``; ``False``, and nothing changed, for any other async iterator."""
    hook = getattr(stream, "decode_with", None)
    if hook is None:
        return False
    return hook(decode) is not False


class RemoteCallError(Exception):
    """A call failed with an exception of a type this process does not have (nor any of its bases but ``Exception``)."""

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback


_STATUS_EXCEPTIONS: dict[grpc.StatusCode, type[Exception]] = {
    grpc.StatusCode.DEADLINE_EXCEEDED: TimeoutError,
    grpc.StatusCode.UNAVAILABLE: ConnectionError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionError,
    grpc.StatusCode.UNAUTHENTICATED: PermissionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ValueError,
}


_KIND_EXCEPTIONS: dict[int, type[Exception]] = {
    pb.ERROR_KIND_NO_SUCH_METHOD: AttributeError,
    pb.ERROR_KIND_BAD_ARGUMENTS: ValueError,
    pb.ERROR_KIND_BAD_PROVIDER_DATA: ValueError,
    pb.ERROR_KIND_PERMISSION_DENIED: PermissionError,
}


class PythonErrors:
    """Translator for code inside a provider: built-in exception types come back as themselves."""

    def __init__(self, what: str) -> None:
        self._what = what

    def remote(self, error: pb.RemoteError) -> BaseException:
        by_kind = _KIND_EXCEPTIONS.get(error.kind)
        if by_kind is not None:
            return by_kind(error.message)
        exc, known = _exceptions.rebuild(
            error.type_name,
            error.bases,
            error.message,
            status_code=error.status_code,
            attributes_json=error.attributes_json,
        )
        if not known and not error.status_code:
            return RemoteCallError(error.type_name, error.message, error.traceback)
        exc.remote_traceback = error.traceback  # type: ignore[attr-defined]
        return exc

    async def status(self, error: grpc.aio.AioRpcError) -> BaseException:
        cls = _STATUS_EXCEPTIONS.get(error.code(), RuntimeError)
        return cls(f"{self._what}: {error.details() or error.code().name}")

    def protocol(self, message: str) -> BaseException:
        return RuntimeError(f"{self._what}: {message}")

    def timeout(self, seconds: float) -> BaseException:
        return TimeoutError(f"{self._what}: no reply within {seconds:g}s")
