"""Serves one provider object over the Worker service: calls by name, JSON in, JSON or a stream out."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import platform
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc

from hostel_sdk import (
    __version__,
    _blobs,
    _exceptions,
    _llama_stack,
    _received,
    _session,
    _telemetry,
    _test_recording,
    codec,
)
from hostel_sdk import _messages as pb
from hostel_sdk._context import RequestContext, enter_request, leave_request
from hostel_sdk._exposure import LIFECYCLE_METHODS, exposed_methods
from hostel_sdk._provider_data import ProviderDataError, ProviderDataReader
from hostel_sdk._wire import SESSION_METADATA

logger = logging.getLogger(__name__)

# A stream message carries at most this many bytes of items; more waiting items go in the next one.
_BATCH_BYTES = 256 * 1024
# Items encoded but not yet handed to gRPC: past this, the provider's generator waits, as it would in
# process for a consumer that stopped reading (gRPC itself holds no more than the HTTP/2 window).
_MAX_PENDING_BYTES = 4 * _BATCH_BYTES
# A generator that never awaits (its items are at hand, or made by CPU) gives the loop back after this many
# bytes of items, so that what it produced is sent while it produces more. A batch's worth: yielding more often
# made smaller messages and cost a quarter of a fast stream's items/s.
_YIELD_BYTES = _BATCH_BYTES
# A stream returned through CallUnary waits this long for its OpenStream before it is closed; at most this
# many wait at once (the host opens each at once: more means a peer that never opens them).
_PARKED_STREAM_TTL_S = 60.0
_MAX_PARKED_STREAMS = 1024


class RelayedError(Exception):
    """An error another process described, to be answered exactly as described: a provider object that forwards
    calls to another worker (a shared host's, hostel.bridge.hub) raises it to pass that worker's error on."""

    def __init__(self, error: pb.RemoteError) -> None:
        super().__init__(error.message)
        self.error = error


def error_reply(exc: BaseException, kind: int = pb.ERROR_KIND_PROVIDER_RAISED) -> pb.CallReply:
    """A reply carrying ``exc`` with its type, base types, HTTP status (if it has one), message and traceback
    (a ``RelayedError`` error: as it was described)."""
    if isinstance(exc, RelayedError):
        return pb.CallReply(error=exc.error)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    bases, status = _exceptions.describe(exc)
    error = pb.RemoteError(
        kind=kind,
        type_name=_exceptions.qualified_name(type(exc)),
        message=str(exc),
        traceback=tb,
        bases=bases,
        status_code=status,
        attributes_json=_exceptions.attributes(exc),
    )
    return pb.CallReply(error=error)


_MUTABLE = (list, dict, set)


def _mutable(value: Any) -> bool:
    return (
        isinstance(value, _MUTABLE) or hasattr(value, "__pydantic_fields__") or hasattr(value, "__dataclass_fields__")
    )


def _snapshot(args: list[Any], kwargs: dict[str, Any]) -> dict[str, bytes]:
    """The JSON of every argument a provider could change in place, to see afterwards whether it did (not of one
    that holds what JSON cannot: an upload, say)."""
    watched = {}
    for key, value in [*((str(i), v) for i, v in enumerate(args)), *kwargs.items()]:
        if _mutable(value):
            with contextlib.suppress(TypeError):
                watched[key] = codec.dumps(value)
    return watched


def _mutations(
    watched: dict[str, bytes], args: list[Any], kwargs: dict[str, Any], *, unwrap: str | None, sent: dict[str, Any]
) -> bytes:
    """JSON of the watched arguments that changed during the call (b"" when none did).

    Some providers work by editing their arguments (a safety shield that redacts the messages it is
    given); in process the caller sees the edit, so the caller through hostel must see it too.
    """
    changed = {}
    for key, before in watched.items():
        value = args[int(key)] if key.isdigit() else kwargs[key]
        after = codec.dumps(value)
        if after == before:
            continue
        if key == unwrap:  # report the fields the caller sent, as the caller sent them
            fields = codec.loads(after)
            changed.update({name: fields[name] for name in sent if name in fields})
        else:
            changed[key] = codec.loads(after)
    return codec.dumps(changed) if changed else b""


@dataclass(frozen=True)
class _Produced:
    """A stream a call returned, and the context it was returned in: the call's provider data (hostel's and the
    provider's Llama Stack's), its user, its span, and whatever the provider set itself. Its items are produced in
    that context, as they are in process, where the server iterates the stream inside the request's."""

    source: Any
    scope: contextvars.Context


class ProviderService:
    """Dispatches Worker.Call to the methods of one provider object."""

    def __init__(
        self,
        impl: object,
        *,
        provider_data_validator: Callable[[Any], Any] | None = None,
        on_shutdown: Callable[[float], None] | None = None,
        provider_data_var: ContextVar[Any] | None = None,
        methods: Mapping[str, Callable[..., Any]] | None = None,
        recording: _test_recording.Recording | None = None,
        lenient_provider_data: bool = False,
    ) -> None:
        """``provider_data_var``: Llama Stack's own context variable, set to the raw provider data per call.
        ``methods``: what callers may call (default: ``exposed_methods(impl)``, its public functions).
        ``recording``: OGX's test recorder, told each call's test. ``lenient_provider_data``: provider data the
        validator rejects reaches the provider as none, and the call goes on (as a Llama Stack server's own providers
        read it: their ``get_request_provider_data()`` logs the error and returns ``None``), instead of failing the
        call with ``ProviderDataError``."""
        self._impl = impl
        self._methods = dict(methods) if methods is not None else exposed_methods(impl)
        self._binders: dict[str, codec.MethodBinder] = {}
        self._provider_data = ProviderDataReader(provider_data_validator, lenient=lenient_provider_data)
        self._on_shutdown = on_shutdown
        self._ls_provider_data = provider_data_var
        self._recording = recording
        self._parked: dict[int, tuple[_Produced, RequestContext, asyncio.TimerHandle]] = {}
        self._next_stream = 0
        self._closing: set[asyncio.Future[Any]] = set()
        self._draining = asyncio.Event()
        self._inbox = _received.Inbox()  # argument blobs the host pushes (SendBlob)
        self._outgoing = _blobs.Parked()  # result blobs waiting for the host's ReadBlob
        self._blob_ids = _blobs.ids()

    def _binder(self, name: str) -> codec.MethodBinder | None:
        binder = self._binders.get(name)
        if binder is None:
            func = self._methods.get(name)
            if func is None:
                return None
            binder = self._binders[name] = codec.MethodBinder.for_callable(name, func)
        return binder

    async def _invoke(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[pb.CallReply | None, _Produced | None, RequestContext]:
        """Run one call: ``(reply, None, ctx)`` for a value or an error, ``(None, stream, ctx)`` for a stream."""
        request_context = RequestContext()
        binder = self._binder(request.method)
        if binder is None:
            if request.method in LIFECYCLE_METHODS and callable(getattr(self._impl, request.method, None)):
                denied = PermissionError(f"{request.method!r} is a lifecycle method: only the host calls it")
                return error_reply(denied, pb.ERROR_KIND_PERMISSION_DENIED), None, request_context
            exc = AttributeError(
                f"provider has no callable method {request.method!r}; "
                f"it has: {', '.join(sorted(self._methods)) or 'none'}"
            )
            return error_reply(exc, pb.ERROR_KIND_NO_SUCH_METHOD), None, request_context
        blobs: list[int] = []
        try:
            args = codec.loads(request.args_json) or []
            kwargs = codec.loads(request.kwargs_json) or {}
            if request.kwargs_text:
                kwargs.update((key, codec.decode_text(text)) for key, text in request.kwargs_text.items())
            if codec.has_models(request.args_json) or codec.has_models(request.kwargs_json):
                args, kwargs = codec.untag(args), codec.untag(kwargs)
            if _blobs.has_markers(request.args_json) or _blobs.has_markers(request.kwargs_json):
                blobs = await _received.receive_arguments(args, kwargs, binder.annotation, self._inbox)
            call_args, call_kwargs = binder.bind(args, kwargs)
        except ValueError as exc:
            self._drop(blobs)
            return error_reply(exc, pb.ERROR_KIND_BAD_ARGUMENTS), None, request_context
        try:
            return await self._run(request, context, binder, call_args, call_kwargs, kwargs=kwargs)
        finally:
            self._drop(blobs)

    def _drop(self, blobs: list[int]) -> None:
        for blob_id in blobs:
            self._inbox.drop(blob_id)

    async def _run(
        self,
        request: pb.CallRequest,
        context: grpc.aio.ServicerContext[Any, Any],
        binder: codec.MethodBinder,
        call_args: list[Any],
        call_kwargs: dict[str, Any],
        *,
        kwargs: dict[str, Any],
    ) -> tuple[pb.CallReply | None, _Produced | None, RequestContext]:
        request_context = RequestContext()
        try:
            decoded, provider_data = self._provider_data.read(request.provider_data_json)
        except ProviderDataError as exc:
            return error_reply(exc, pb.ERROR_KIND_BAD_PROVIDER_DATA), None, request_context
        remaining = request.timeout_s or context.time_remaining()
        span = _telemetry.start_call(request.method, request.trace_context) if request.trace_context else None
        request_context = RequestContext(
            provider_data=provider_data,
            raw_provider_data=request.provider_data_json,
            deadline=None if remaining is None else time.monotonic() + remaining,
            span=span,
        )
        watched = _snapshot(call_args, call_kwargs)
        token = enter_request(request_context)
        ls_token = None
        if self._ls_provider_data is not None and request.provider_data_json:
            ls_token = self._ls_provider_data.set(_llama_stack.stack_provider_data(decoded))
        leave_test = self._recording.enter_call() if self._recording is not None else None
        try:
            with _telemetry.active(span):
                result = self._methods[request.method](*call_args, **call_kwargs)
                if inspect.isawaitable(result):
                    result = await result
                if hasattr(result, "__aiter__"):
                    result = _Produced(result, contextvars.copy_context())
        except Exception as exc:  # noqa: BLE001 - the provider's exception goes back to the caller
            if span is not None:
                span.end(exc)
            return error_reply(exc), None, request_context
        except BaseException as exc:  # cancelled: the caller gave up
            if span is not None:
                span.end(exc)
            raise
        finally:
            if leave_test is not None:
                leave_test()
            if ls_token is not None:
                self._ls_provider_data.reset(ls_token)  # type: ignore[union-attr]
            leave_request(token)
        if isinstance(result, _Produced):
            return None, result, request_context  # the stream ends its span
        if span is not None:
            span.end()
        try:
            if codec.is_long_text(result):
                reply = pb.CallReply(value_text=codec.encode_text(result))
            else:
                outbox = _blobs.Outbox(self._blob_ids)
                reply = pb.CallReply(value_json=codec.dumps(result, blobs=outbox))
                if outbox.sources:
                    self._outgoing.park(outbox.sources)
        except (TypeError, ValueError, RuntimeError) as exc:
            return error_reply(exc, pb.ERROR_KIND_BAD_RESULT), None, request_context
        if watched:
            # A method taking one request model got the caller's keyword arguments wrapped: unwrap them back.
            wrapped = (
                binder.request_param
                if binder.request_param in call_kwargs and binder.request_param not in kwargs
                else None
            )
            reply.mutations_json = _mutations(watched, call_args, call_kwargs, unwrap=wrapped, sent=kwargs)
        return reply, None, request_context

    async def call(
        self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CallReply]:
        """Worker.Call: one value, or stream_begin and batches of items; errors as a final reply."""
        reply, stream, request_context = await self._invoke(request, context)
        if reply is not None:
            yield reply
            return
        assert stream is not None
        yield pb.CallReply(stream_begin=pb.StreamBegin())
        async for item in _stream(stream, request_context):
            yield item

    async def call_unary(self, request: pb.CallRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.CallReply:
        """Worker.CallUnary: a value or an error, or a handle to a stream parked for OpenStream."""
        reply, stream, request_context = await self._invoke(request, context)
        if reply is not None:
            return reply
        assert stream is not None
        if len(self._parked) >= _MAX_PARKED_STREAMS:
            self._close_later(stream)
            busy = RuntimeError(f"{len(self._parked)} streams are waiting to be opened, the limit; try again")
            return error_reply(busy, pb.ERROR_KIND_HOST_ERROR)
        self._next_stream += 1
        handle = self._next_stream
        timer = asyncio.get_running_loop().call_later(_PARKED_STREAM_TTL_S, self._expire, handle)
        self._parked[handle] = (stream, request_context, timer)
        return pb.CallReply(stream_handle=pb.StreamHandle(id=handle))

    async def session(
        self, requests: AsyncIterator[pb.SessionRequest], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.SessionReply]:
        """Worker.Session: calls multiplexed on one stream, each answered as CallUnary would answer it."""

        async def answer(request: pb.CallRequest) -> pb.CallReply:
            try:
                return await self.call_unary(request, context)
            except Exception as exc:  # a unary call would have ended with this as its status
                logger.exception("call %s() failed inside hostel", request.method)
                return error_reply(exc)

        await context.send_initial_metadata(((SESSION_METADATA, "1"),))
        # A generator, not context.write from each call's task: with `telemetry.instrument`, OpenTelemetry's gRPC
        # instrumentation wraps this server in an interceptor that iterates what a stream-stream handler returns.
        async for reply in _session.serve(requests, answer, self._draining):
            yield reply

    def drain(self) -> None:
        """Stop taking calls on sessions; each ends once its calls in flight are answered (the worker is stopping)."""
        self._draining.set()

    def _expire(self, handle: int) -> None:
        parked = self._parked.pop(handle, None)
        if parked is not None:
            self._close_later(parked[0])

    def _close_later(self, stream: _Produced) -> None:
        if hasattr(stream.source, "aclose"):
            task = stream.scope.run(asyncio.ensure_future, stream.source.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def open_stream(
        self, request: pb.StreamHandle, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CallReply]:
        """Worker.OpenStream: the items of a stream that CallUnary parked."""
        parked = self._parked.pop(request.id, None)
        if parked is None:
            exc = LookupError(f"no stream {request.id}: it was already opened, or not opened within 60 s")
            yield error_reply(exc, pb.ERROR_KIND_BAD_ARGUMENTS)
            return
        stream, request_context, timer = parked
        timer.cancel()
        async for item in _stream(stream, request_context):
            yield item

    async def describe(
        self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DescribeReply:
        """Worker.Describe: the public methods and the runtime versions."""
        methods = [
            pb.MethodInfo(name=name, streams=inspect.isasyncgenfunction(func))
            for name, func in sorted(self._methods.items())
        ]
        return pb.DescribeReply(methods=methods, sdk_version=__version__, python_version=platform.python_version())

    async def send_blob(
        self, requests: AsyncIterator[pb.BlobChunk], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.BlobReceipt:
        """Worker.SendBlob: take an argument blob's chunks as the provider reads them."""
        return pb.BlobReceipt(received=await self._inbox.receive(requests))

    async def read_blob(
        self, request: pb.BlobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.BlobChunk]:
        """Worker.ReadBlob: a result blob's bytes, in chunks, once."""
        source = self._outgoing.take(request.id)
        if source is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no blob {request.id}: read already, or not within 60 s")
            return
        async for chunk in _blobs.send_chunks(source, context):
            yield chunk

    async def shutdown(
        self, request: pb.ShutdownRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ShutdownReply:
        """Worker.Shutdown: stop serving after a grace period for in-flight calls."""
        if self._on_shutdown is not None:
            self._on_shutdown(request.grace_s)
        return pb.ShutdownReply()


async def _stream(stream: _Produced, request_context: RequestContext) -> AsyncIterator[pb.CallReply]:
    """Relay an async iterator as batched replies.

    A producer task encodes items as the provider yields them; each reply carries every item produced
    since the last one was sent, so a fast stream travels in few messages and a slow one is never held back.
    The producer runs at most ``_MAX_PENDING_BYTES`` ahead of what gRPC took: a reader that stops reading
    pauses the generator. It gives the loop back after an item that found nothing pending and every
    ``_YIELD_BYTES``, so a generator that never awaits still has its first item sent at once.
    """
    source = stream.source
    pending: deque[bytes] = deque()
    pending_bytes = 0
    ready = asyncio.Event()
    room = asyncio.Event()
    room.set()
    done = False
    failure: BaseException | None = None

    async def produce() -> None:
        nonlocal done, failure, pending_bytes
        unyielded = 0
        try:
            async for item in source:
                data = codec.dumps(item)
                first = not pending
                pending.append(data)
                pending_bytes += len(data)
                unyielded += len(data)
                ready.set()
                if pending_bytes >= _MAX_PENDING_BYTES:
                    room.clear()
                    await room.wait()
                    unyielded = 0
                elif first or unyielded >= _YIELD_BYTES:
                    # Without this, a generator that never awaits fills the whole window before the first
                    # item leaves: the sender ships the first item now, and sends while this produces.
                    unyielded = 0
                    await asyncio.sleep(0)
        except Exception as exc:  # noqa: BLE001 - relayed to the caller after the items before it
            failure = exc
        finally:
            done = True
            ready.set()

    producer = stream.scope.run(asyncio.create_task, produce())  # the task runs in a copy of the call's context
    try:
        while True:
            await ready.wait()
            ready.clear()
            while pending:
                batch: list[bytes] = []
                size = 0
                while pending and (not batch or size + len(pending[0]) <= _BATCH_BYTES):
                    item = pending.popleft()
                    batch.append(item)
                    size += len(item)
                pending_bytes -= size
                if pending_bytes < _MAX_PENDING_BYTES:
                    room.set()
                yield pb.CallReply(items=pb.StreamItems(items_json=batch))
            if done:
                break
        if failure is not None:
            yield error_reply(failure)
    finally:
        if not producer.done():
            producer.cancel()  # the caller went away: stop the provider's generator
            with contextlib.suppress(asyncio.CancelledError):
                await producer
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
        if request_context.span is not None:
            request_context.span.end(failure)
