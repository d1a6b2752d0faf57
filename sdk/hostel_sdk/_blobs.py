"""Bytes across the process boundary: uploaded files, ``bytes``, file objects, a ``Response`` and its body.

JSON cannot carry them, and a message should not hold a whole file. So where a value of a call (an argument, a
result) is one of them, its JSON holds a marker, ``{"$hostel_blob": {"id": ..., "kind": ..., ...}}``, and its
bytes travel beside the call in chunks of at most ``CHUNK_BYTES``: pushed by the caller with ``SendBlob`` (an
argument), or read by the caller with ``ReadBlob`` (a result). Both are gRPC streams, so a reader that stops
reading stops the writer (HTTP/2 flow control) and neither side holds more than a few chunks. A blob of at most
``INLINE_BYTES`` whose size is known travels inside its marker instead (base64), with no extra round trip.

The receiving side rebuilds each as the type it expects: the parameter's annotation in a worker (a starlette or
FastAPI ``UploadFile``, ``bytes``, ``str``: ``hostel_sdk._received``), the protocol's return annotation in the
bridge (a ``Response``), or a ``Blob`` (chunks, and ``read()``) where nothing says more.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import grpc

from hostel_sdk import _messages as pb

logger = logging.getLogger(__name__)

BLOB_KEY = "$hostel_blob"
CHUNK_BYTES = 1 << 20
INLINE_BYTES = 64 << 10
Kind = str  # "bytes" | "file" | "response"


def _is_response(value: Any) -> bool:
    """A starlette (or FastAPI) ``Response``: duck-typed, so a process without starlette never imports it."""
    return (
        hasattr(value, "status_code")
        and hasattr(value, "headers")
        and (hasattr(value, "body") or hasattr(value, "body_iterator") or hasattr(value, "path"))
        and hasattr(value, "media_type")
    )


def _is_upload(value: Any) -> bool:
    """A starlette ``UploadFile`` (or anything with an async ``read`` and a ``filename``)."""
    read = getattr(value, "read", None)
    return hasattr(value, "filename") and read is not None and asyncio.iscoroutinefunction(read)


def is_blob(value: Any) -> bool:
    """Whether ``value`` travels as bytes beside a message rather than as JSON."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return True
    if isinstance(value, (str, int, float, bool, dict, list, tuple)) or value is None:
        return False
    return _is_response(value) or _is_upload(value) or isinstance(value, io.IOBase) or _is_file_object(value)


def _in_memory(file: Any) -> bool:
    """Whether a file is in memory, where reading it blocks nobody: a ``BytesIO`` or ``StringIO``, or a spooled
    temporary file that has not rolled over to disk."""
    return isinstance(file, (io.BytesIO, io.StringIO)) or (
        isinstance(file, tempfile.SpooledTemporaryFile) and not getattr(file, "_rolled", True)
    )


def _bytes_held(file: Any) -> tuple[io.BytesIO, memoryview] | None:
    """A ``BytesIO`` (a spooled file's, before it rolls over) and a view of the bytes it holds: ``getvalue()`` hands
    them over without copying (the ``BytesIO`` shares them until written to), where ``read`` copies out each chunk."""
    if isinstance(file, tempfile.SpooledTemporaryFile) and not getattr(file, "_rolled", True):
        file = getattr(file, "_file", None)
    if not isinstance(file, io.BytesIO):
        return None
    return file, memoryview(file.getvalue())


def _is_file_object(value: Any) -> bool:
    return callable(getattr(value, "read", None)) and hasattr(value, "seek") and not hasattr(value, "model_dump")


class Source:
    """The bytes of one blob being sent, read chunk by chunk on the sending side."""

    def __init__(self, value: Any) -> None:
        self.value = value

    async def chunks(self, size: int = CHUNK_BYTES) -> AsyncIterator[bytes | memoryview]:
        """The blob's bytes in chunks of at most ``size``; those of a ``bytes`` value (or a ``Response``'s body)
        as views into it: the message they go into is their only copy."""
        value = self.value
        if isinstance(value, (bytes, bytearray, memoryview)):
            for piece in _split(memoryview(value).cast("B"), size):
                yield piece
        elif _is_response(value):
            async for chunk in _response_chunks(value, size):
                yield chunk
        elif _is_upload(value) and not _in_memory(getattr(value, "file", None)):
            while chunk := await value.read(size):
                yield bytes(chunk)
        else:  # a file object, or an upload's own in memory (OGX's PreReadUploadFile: starlette would read each
            # chunk in a thread): read in a thread unless it is in memory
            file = value.file if _is_upload(value) else value
            held = _bytes_held(file)
            if held is not None:  # views into the bytes it holds, instead of a copy read out of them
                buffer, data = held
                for piece in _split(data[buffer.tell() :], size):
                    buffer.seek(len(piece), io.SEEK_CUR)
                    yield piece
                return
            in_memory = _in_memory(file)
            while True:
                chunk = file.read(size) if in_memory else await asyncio.to_thread(file.read, size)
                if not chunk:
                    return
                yield chunk.encode() if isinstance(chunk, str) else bytes(chunk)


async def _response_chunks(response: Any, size: int) -> AsyncIterator[bytes | memoryview]:
    body = getattr(response, "body", None)
    if isinstance(body, (bytes, bytearray, memoryview)) and not hasattr(response, "body_iterator"):
        async for chunk in Source(body).chunks(size):
            yield chunk
        return
    path = getattr(response, "path", None)
    if path is not None and not hasattr(response, "body_iterator"):  # a FileResponse
        with open(path, "rb") as file:  # read in a thread below
            async for chunk in Source(file).chunks(size):
                yield chunk
        return
    charset = getattr(response, "charset", "utf-8")
    iterator = response.body_iterator
    if hasattr(iterator, "__aiter__"):
        async for part in iterator:
            for piece in _split(part.encode(charset) if isinstance(part, str) else bytes(part), size):
                yield piece
    else:
        for part in iterator:
            for piece in _split(part.encode(charset) if isinstance(part, str) else bytes(part), size):
                yield piece


def _split(data: bytes | memoryview, size: int) -> Iterator[bytes | memoryview]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _size(value: Any) -> int | None:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    if _is_response(value):
        body = getattr(value, "body", None)
        if isinstance(body, (bytes, bytearray)) and not hasattr(value, "body_iterator"):
            return len(body)
        return None
    size = getattr(value, "size", None)
    if isinstance(size, int):
        return size
    if isinstance(value, io.BytesIO):
        return value.getbuffer().nbytes - value.tell()
    return None


def _describe(value: Any) -> dict[str, Any]:
    """What a blob's marker says of it besides its bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"kind": "bytes"}
    if _is_response(value):
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in getattr(value, "raw_headers", [])]
        return {
            "kind": "response",
            "status_code": int(value.status_code),
            "headers": headers,
            "media_type": value.media_type,
        }
    described: dict[str, Any] = {"kind": "file", "filename": getattr(value, "filename", None)}
    if described["filename"] is None and isinstance(getattr(value, "name", None), str):
        described["filename"] = os.path.basename(value.name)
    content_type = getattr(value, "content_type", None)
    if isinstance(content_type, str):
        described["content_type"] = content_type
    return described


def summary(value: Any) -> dict[str, Any]:
    """What a blob's marker says of it, its size included, without reading it."""
    return {**_describe(value), "size": _size(value)}


class Outbox:
    """The blobs of one message being encoded: ``marker`` turns each into its JSON marker and keeps its source
    under a new id, for the sender to push (arguments) or park (results)."""

    def __init__(self, ids: Iterator[int]) -> None:
        self._ids = ids
        self.sources: dict[int, Source] = {}

    def marker(self, value: Any) -> dict[str, Any]:
        """The marker for ``value`` (a blob): small ones carry their bytes, the rest an id to fetch them by."""
        described = _describe(value)
        size = _size(value)
        if size is not None:
            described["size"] = size
        inline = _inline_bytes(value, size)
        if inline is not None:
            described["data"] = base64.b64encode(inline).decode()
        else:
            blob_id = next(self._ids)
            described["id"] = blob_id
            self.sources[blob_id] = Source(value)
        return {BLOB_KEY: described}


def _inline_bytes(value: Any, size: int | None) -> bytes | None:
    """The bytes of a small blob that are at hand without reading anything, else ``None``."""
    if size is None or size > INLINE_BYTES:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    body = getattr(value, "body", None) if _is_response(value) and not hasattr(value, "body_iterator") else None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    buffer = getattr(value, "file", value)
    if isinstance(buffer, io.BytesIO):
        return buffer.getvalue()[buffer.tell() :]
    return None


def marker_of(value: Any) -> dict[str, Any] | None:
    """The marker fields of a JSON value that is a blob's marker, else ``None``."""
    if isinstance(value, dict) and len(value) == 1:
        found = value.get(BLOB_KEY)
        if isinstance(found, dict):
            return found
    return None


def ids() -> Iterator[int]:
    """Blob ids for one sender: unique for its lifetime."""
    return itertools.count(1)


class Blob:
    """Bytes the other side returned (a file's content, a ``Response``'s body): ``blob.chunks()`` as they arrive,
    or ``await blob.read()`` for all of them (not an async iterator itself: a result that is one is a stream).
    ``kind`` is ``bytes``, ``file`` or ``response``; a response has ``status_code``, ``headers`` and
    ``media_type``, a file ``filename`` and ``content_type``."""

    def __init__(
        self, marker: Mapping[str, Any], fetch: Callable[[], AsyncIterator[bytes | memoryview]] | None
    ) -> None:
        self.kind: str = str(marker.get("kind", "bytes"))
        self.size: int | None = marker.get("size")
        self.filename: str | None = marker.get("filename")
        self.content_type: str | None = marker.get("content_type")
        self.status_code: int = int(marker.get("status_code") or 200)
        self.headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in marker.get("headers") or ()]
        self.media_type: str | None = marker.get("media_type")
        self._data = base64.b64decode(marker["data"]) if "data" in marker else None
        self._fetch = fetch
        self._taken = False
        self._reader: AsyncIterator[bytes | memoryview] | None = None
        self._buffer = bytearray()

    @property
    def inline(self) -> bytes | None:
        """The bytes, when they came inside the message."""
        return self._data

    async def chunks(self) -> AsyncIterator[bytes]:
        """The bytes in chunks; a blob that was not inline can be read once."""
        async for chunk in self.views():
            yield bytes(chunk)

    async def views(self) -> AsyncIterator[bytes | memoryview]:
        """The bytes in chunks as they arrived, without copying them out of the messages that carried them (views
        into them): for code that passes them on, to a socket or a file. Read once, as ``chunks``."""
        if self._data is not None:
            if self._data:
                yield self._data
            return
        if self._taken or self._fetch is None:
            raise RuntimeError("this blob was read already; its bytes are not kept")
        self._taken = True
        async for chunk in self._fetch():
            yield chunk

    async def read(self, size: int = -1) -> bytes:
        """The next ``size`` bytes (all that remain if ``size`` < 0), as a file's ``read``; a blob's bytes are read
        once (those returned are not kept)."""
        if self._reader is None:
            self._reader = self.views()
            self._buffer = bytearray()
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += await self._reader.__anext__()
            except StopAsyncIteration:
                break
        cut = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return data

    def __repr__(self) -> str:
        return f"Blob(kind={self.kind!r}, size={self.size!r}, filename={self.filename!r})"


class Parked:
    """Result blobs a sender keeps until the other side reads them (or until ``ttl_s`` passes)."""

    def __init__(self, ttl_s: float = 60.0, limit: int = 1024) -> None:
        self._ttl_s = ttl_s
        self._limit = limit
        self._sources: dict[int, tuple[Source, asyncio.TimerHandle]] = {}

    def park(self, sources: Mapping[int, Source]) -> None:
        """Keep ``sources`` to be read by id; refused (``RuntimeError``) past the limit."""
        if not sources:
            return
        if len(self._sources) + len(sources) > self._limit:
            raise RuntimeError(f"{len(self._sources)} blobs are waiting to be read, the limit; try again")
        loop = asyncio.get_running_loop()
        for blob_id, source in sources.items():
            self._sources[blob_id] = (source, loop.call_later(self._ttl_s, self._expire, blob_id))

    def take(self, blob_id: int) -> Source | None:
        """The source parked under ``blob_id`` (once), or ``None``."""
        found = self._sources.pop(blob_id, None)
        if found is None:
            return None
        found[1].cancel()
        return found[0]

    def clear(self) -> None:
        """Drop every blob still waiting (the other side is gone)."""
        for blob_id in list(self._sources):
            self._expire(blob_id)

    def _expire(self, blob_id: int) -> None:
        found = self._sources.pop(blob_id, None)
        if found is not None:
            logger.debug("blob %d was not read within %.0f s: dropped", blob_id, self._ttl_s)
            _close_source(found[0])


def _close_source(source: Source) -> None:
    close = getattr(source.value, "close", None)
    if close is None or asyncio.iscoroutinefunction(close):
        return
    with contextlib.suppress(Exception):
        close()


def has_markers(data: bytes | memoryview) -> bool:
    """Whether a JSON message may hold blob markers (a cheap test before walking it)."""
    return b'"$hostel_blob"' in (data if isinstance(data, bytes) else bytes(data))


def materialize(value: Any, open_blob: Callable[[Mapping[str, Any]], Any]) -> Any:
    """``value`` with every blob marker in it replaced by ``open_blob(marker)`` (a result, as the caller sees it)."""
    marker = marker_of(value)
    if marker is not None:
        return open_blob(marker)
    if isinstance(value, dict):
        return {key: materialize(item, open_blob) for key, item in value.items()}
    if isinstance(value, list):
        return [materialize(item, open_blob) for item in value]
    return value


async def send_chunks(source: Source, context: Any = None, blob_id: int = 0) -> AsyncIterator[pb.BlobChunk]:
    """A blob's bytes as ``BlobChunk`` messages (the first naming ``blob_id``: what ``SendBlob`` needs); a source
    that fails ends the RPC with its error (``context``: a server's), or raises."""
    first = True
    try:
        async for data in source.chunks():
            yield pb.BlobChunk(id=blob_id if first else 0, data=data)
            first = False
    except Exception as exc:
        if context is None:
            raise
        logger.warning("reading a blob failed: %r", exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"reading the blob failed: {type(exc).__name__}: {exc}")
    if first and blob_id:
        yield pb.BlobChunk(id=blob_id)  # an empty blob is still named, so its reader sees it end


Translate = Callable[[grpc.aio.AioRpcError], Awaitable[BaseException]]


async def fetch_chunks(call: Any, translate: Translate | None = None) -> AsyncIterator[bytes | memoryview]:
    """The bytes of a ``ReadBlob`` call's chunks (views into its messages); the call is cancelled if the reader
    stops early. A failed call raises what ``translate`` makes of it."""
    try:
        async for chunk in call:
            if chunk.data:
                yield chunk.data
    except grpc.aio.AioRpcError as exc:
        if translate is None:
            raise
        raise await translate(exc) from None
    finally:
        call.cancel()


class Transfer:
    """The calling side's blobs on one channel: pushes a call's argument blobs (``SendBlob``) and opens the blobs
    of its result (``ReadBlob``). ``stub``: a ``WorkerStub`` or ``HostStub`` (which send the token)."""

    def __init__(self, stub: Any, *, translate: Translate | None = None) -> None:
        self._stub = stub
        self._translate = translate
        self._ids = ids()

    def outbox(self) -> Outbox:
        """A new outbox for one call's arguments."""
        return Outbox(self._ids)

    def push(self, outbox: Outbox) -> Pushes:
        """Start pushing every blob ``outbox`` took; the caller ends the pushes when its call is answered."""
        return Pushes([asyncio.create_task(self._push(i, s)) for i, s in outbox.sources.items()])

    async def _push(self, blob_id: int, source: Source) -> None:
        try:
            await self._stub.send_blob(send_chunks(source, blob_id=blob_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                logger.debug("pushing blob %d failed: %s", blob_id, exc.details())

    def open(self, marker: Mapping[str, Any]) -> Blob:
        """The blob a result's marker names (inline, or read from the other side once). Its read starts now, not
        at the first ``chunks()``: the first chunk is on its way while the caller handles the result (a server
        sending its response's headers took 2.5-3 ms before it asked); a blob dropped unread cancels it."""
        if "id" not in marker:
            return Blob(marker, None)
        call = self._stub.read_blob(pb.BlobRequest(id=int(marker["id"])))
        return Blob(marker, lambda: fetch_chunks(call, self._translate))

    def values(self, value: Any) -> Any:
        """A decoded result with its blob markers opened."""
        return materialize(value, self.open)


class Pushes:
    """The pushes of one call's argument blobs."""

    def __init__(self, tasks: list[asyncio.Task[None]]) -> None:
        self._tasks = tasks

    def end(self) -> None:
        """Stop pushing what the other side has not taken (its call is answered)."""
        for task in self._tasks:
            task.cancel()


class NoBlobs:
    """A ``BlobServicer`` for a service that carries no blobs: both RPCs refuse, saying so."""

    def __init__(self, why: str) -> None:
        self._why = why

    async def send_blob(self, requests: AsyncIterator[pb.BlobChunk], context: Any) -> pb.BlobReceipt:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, self._why)
        return pb.BlobReceipt()

    async def read_blob(self, request: pb.BlobRequest, context: Any) -> AsyncIterator[pb.BlobChunk]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, self._why)
        yield pb.BlobChunk()  # never reached: abort raises
