"""The receiving side of blobs (``hostel_sdk._blobs``): the bytes of an argument as they arrive (``Incoming``,
bounded, spooled for seeking back), met with the call that names them (``Inbox``), and rebuilt as what the
parameter asks for: the ``UploadFile`` class it names (FastAPI's or starlette's), ``bytes`` or ``str``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import sys
import tempfile
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from hostel_sdk._blobs import marker_of, materialize

# Chunks a receiver holds that its reader has not taken yet; past this the sender waits.
_QUEUED_CHUNKS = 4
# Bytes of a received blob kept in memory for seeking back; the rest spills to a temporary file.
_SPOOL_BYTES = 1 << 20
# A read of all that remains takes at most this much in memory at once (the chunks, then them joined); past it,
# what remains goes through the spool.
_KEEP_BYTES = 256 << 20


class Incoming:
    """A blob being received: chunks queue as the sender pushes them (the queue is bounded, so a reader that
    does not read holds the sender back) and are read with ``read``; everything read is spooled, so a reader may
    seek back."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | memoryview | BaseException | None] = asyncio.Queue(_QUEUED_CHUNKS)
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - closed by close()
        self._kept = b""  # the last bytes received, read in one piece and kept in memory instead of spooled
        self._position = 0  # the reader's offset in what was received
        self._received = 0  # bytes received so far: spooled, then kept
        self._ended = False
        self.closed = asyncio.Event()

    async def put(self, chunk: bytes | memoryview | BaseException | None) -> None:
        """Queue a chunk (``None``: the end; an exception: the sender failed); waits while the queue is full."""
        if self.closed.is_set():
            raise EOFError("the reader closed the blob")
        await self._queue.put(chunk)

    async def _fill(self, wanted: int) -> None:
        """Take chunks from the queue into the spool until ``wanted`` bytes are past the reader (-1: all)."""
        while not self._ended and (wanted < 0 or self._received - self._position < wanted):
            chunk = await self._next()
            if chunk is not None:
                self._spool_chunk(chunk)

    async def _next(self) -> bytes | memoryview | None:
        """The next chunk, waiting for it; ``None`` at the end. What the sender failed with is raised."""
        chunk = await self._queue.get()
        if isinstance(chunk, BaseException):
            raise chunk
        self._ended = chunk is None
        return chunk

    def _spool_chunk(self, chunk: bytes | memoryview) -> None:
        self._spool.seek(self._received)
        self._spool.write(chunk)
        self._received += len(chunk)

    async def _keep_rest(self) -> bytes | None:
        """Everything still to come, in one piece, kept in memory rather than spooled: the reader holds it all
        anyway, and a file's round trip through the spool cost as much as sending it. ``None`` past ``_KEEP_BYTES``
        (what was taken is spooled; the usual path goes on); if the sender fails, what was taken is spooled too."""
        chunks: list[bytes | memoryview] = []
        taken = 0
        try:
            while not self._ended and taken <= _KEEP_BYTES:
                chunk = await self._next()
                if chunk is not None:
                    chunks.append(chunk)
                    taken += len(chunk)
        finally:
            if not self._ended:
                for chunk in chunks:
                    self._spool_chunk(chunk)
        if not self._ended:
            return None
        self._kept = b"".join(chunks)
        self._received += len(self._kept)
        self._position = self._received
        return self._kept

    def _take(self, size: int) -> bytes:
        """Up to ``size`` received bytes from the reader's offset (-1: all), from the spool, then the kept bytes."""
        spooled = self._received - len(self._kept)
        data = b""
        if self._position < spooled:
            self._spool.seek(self._position)
            data = self._spool.read(spooled - self._position if size < 0 else min(size, spooled - self._position))
            self._position += len(data)
        wanted = -1 if size < 0 else size - len(data)
        if self._kept and self._position >= spooled and wanted != 0:
            start = self._position - spooled
            kept = self._kept[start:] if wanted < 0 else self._kept[start : start + wanted]
            self._position += len(kept)
            data = data + kept if data else kept
        return data

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that remain if ``size`` < 0), waiting for the sender as needed."""
        if self.closed.is_set():
            raise ValueError("I/O operation on closed file")
        whole = size is None or size < 0
        if whole and self._position == self._received and not self._ended:
            kept = await self._keep_rest()
            if kept is not None:
                return kept
        await self._fill(-1 if whole else size)
        return self._take(-1 if whole else size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the reader within what was received (seeking forward past it reads on at the next ``read``)."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._received}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        """Stop receiving; a sender waiting to queue a chunk gets ``EOFError``."""
        if not self.closed.is_set():
            self.closed.set()
            self._spool.close()
            self._kept = b""
            while not self._queue.empty():
                self._queue.get_nowait()


class SyncReader(io.RawIOBase):
    """A blocking file over an ``Incoming`` blob, for code that reads an upload's ``.file`` from a thread (as
    starlette's ``UploadFile`` does); read from the event loop's own thread it would deadlock, so it refuses."""

    def __init__(self, incoming: Incoming, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._incoming = incoming
        self._loop = loop

    def _run(self, make: Callable[[], Awaitable[Any]]) -> Any:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise io.UnsupportedOperation(
                "this upload streams from hostel's host: read it with `await file.read()`, not `file.file.read()` "
                "inside the event loop"
            )

        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return bytes(self._run(lambda: self._incoming.read(size)))

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._incoming.seek(offset, whence)

    def tell(self) -> int:
        return self._incoming.tell()

    def close(self) -> None:
        self._incoming.close()
        super().close()


class _ReadsIncoming:
    """``UploadFile``'s async ``read``/``seek``/``close``, over an ``Incoming`` blob on the event loop."""

    _incoming: Incoming

    async def read(self, size: int = -1) -> bytes:
        return await self._incoming.read(size)

    async def seek(self, offset: int) -> None:
        self._incoming.seek(offset)

    async def close(self) -> None:
        self._incoming.close()


def _upload_class(base: type) -> type:
    """``base`` (a starlette or FastAPI ``UploadFile``) reading from an ``Incoming`` blob on the event loop."""

    class Upload(_ReadsIncoming, base):  # type: ignore[misc]
        async def write(self, data: bytes) -> None:
            raise io.UnsupportedOperation("an upload received through hostel is read-only")

    Upload.__name__ = Upload.__qualname__ = f"Hostel{base.__name__}"
    return Upload


_UPLOAD_CLASSES: dict[type, type] = {}


def upload_base(annotation: Any = None) -> type | None:
    """The ``UploadFile`` class to rebuild an upload as: ``annotation`` when it is one, else FastAPI's or
    starlette's if this process has imported them (never imported for it)."""
    if isinstance(annotation, type) and any(c.__name__ == "UploadFile" for c in annotation.__mro__):
        return annotation
    for module in ("fastapi", "starlette.datastructures"):
        found = getattr(sys.modules.get(module), "UploadFile", None)
        if isinstance(found, type):
            return found
    return None


def upload(marker: Mapping[str, Any], incoming: Incoming, annotation: Any = None) -> Any:
    """An uploaded file over ``incoming``: an ``UploadFile`` of the expected class, else a ``SyncReader``-backed
    ``BlobFile``."""
    base = upload_base(annotation)
    if base is None:
        return BlobFile(marker, incoming)
    cls = _UPLOAD_CLASSES.get(base) or _UPLOAD_CLASSES.setdefault(base, _upload_class(base))
    headers_class = getattr(sys.modules.get("starlette.datastructures"), "Headers", None)
    content_type = marker.get("content_type")
    headers = headers_class({"content-type": content_type}) if headers_class and content_type else None
    made = cls(
        SyncReader(incoming, asyncio.get_running_loop()),
        size=marker.get("size"),
        filename=marker.get("filename"),
        headers=headers,
    )
    made._incoming = incoming
    return made


class BlobFile(_ReadsIncoming):
    """An uploaded file where no ``UploadFile`` class is at hand: ``filename``, ``content_type``, ``size`` and an
    async ``read``/``seek``/``close``, as ``UploadFile`` has them."""

    def __init__(self, marker: Mapping[str, Any], incoming: Incoming) -> None:
        self.marker = dict(marker)  # what the sender said of it (kind, name, type, size)
        self.filename: str | None = marker.get("filename")
        self.content_type: str | None = marker.get("content_type")
        self.size: int | None = marker.get("size")
        self._incoming = incoming


def inline_incoming(marker: Mapping[str, Any]) -> Incoming:
    """An ``Incoming`` already holding an inline blob's bytes."""
    incoming = Incoming()
    data = base64.b64decode(marker.get("data") or "")
    incoming._spool.write(data)
    incoming._received = len(data)
    incoming._ended = True
    return incoming


class Inbox:
    """Argument blobs a receiver is being sent (``SendBlob``), met by id with the call that names them, whichever
    arrives first."""

    def __init__(self) -> None:
        self._incoming: dict[int, Incoming] = {}

    def get(self, blob_id: int) -> Incoming:
        """The blob being received under ``blob_id`` (made on first use)."""
        found = self._incoming.get(blob_id)
        if found is None:
            found = self._incoming[blob_id] = Incoming()
        return found

    def drop(self, blob_id: int) -> None:
        """Forget a blob (its call ended): a sender still pushing it stops."""
        found = self._incoming.pop(blob_id, None)
        if found is not None:
            found.close()

    async def receive(self, chunks: AsyncIterator[Any]) -> int:
        """Take one pushed blob (``BlobChunk`` messages, the first naming its id) into its ``Incoming``; the bytes
        taken."""
        incoming: Incoming | None = None
        taken = 0
        try:
            async for chunk in chunks:
                if incoming is None:
                    incoming = self.get(chunk.id)
                await incoming.put(chunk.data)
                taken += len(chunk.data)
            if incoming is not None:
                await incoming.put(None)
        except EOFError:
            pass  # the reader closed it: stop taking
        except Exception as exc:
            if incoming is not None and not incoming.closed.is_set():
                with contextlib.suppress(EOFError):
                    incoming._queue.put_nowait(ConnectionError(f"the upload broke off: {exc}"))
            raise
        return taken


def received(value: Any, inbox: Inbox, used: list[int]) -> Any:
    """``value`` with each blob marker in it replaced by a ``BlobFile`` reading from ``inbox`` (its id added to
    ``used``): arguments a host passes on without knowing the parameter types they are for."""

    def open_blob(marker: Mapping[str, Any]) -> BlobFile:
        if "id" not in marker:
            return BlobFile(marker, inline_incoming(marker))
        used.append(int(marker["id"]))
        return BlobFile(marker, inbox.get(int(marker["id"])))

    return materialize(value, open_blob)


async def receive_arguments(
    args: list[Any], kwargs: dict[str, Any], annotation: Callable[[int | str], Any], inbox: Inbox
) -> list[int]:
    """Replace each blob marker among a call's arguments (or among the items of a list argument) with the value
    its parameter's annotation asks for, its bytes read from ``inbox``; return the ids of the blobs used (to drop
    once the call ends)."""
    used: list[int] = []
    for position, value in enumerate(args):
        args[position] = await _receive(value, annotation(position), inbox, used)
    for name, value in kwargs.items():
        kwargs[name] = await _receive(value, annotation(name), inbox, used)
    return used


async def _receive(value: Any, hint: Any, inbox: Inbox, used: list[int]) -> Any:
    marker = marker_of(value)
    if marker is None:
        if isinstance(value, list) and any(marker_of(item) is not None for item in value):
            args = typing.get_args(unwrap(hint))
            item_hint = args[0] if args else None
            return [await _receive(item, item_hint, inbox, used) for item in value]
        return value
    if "id" in marker:
        used.append(int(marker["id"]))
        incoming = inbox.get(int(marker["id"]))
    else:
        incoming = inline_incoming(marker)
    return await rebuild(marker, incoming, hint)


def unwrap(hint: Any) -> Any:
    """``X`` from ``Annotated[X, ...]``, ``X | None``, ``Optional[X]``."""
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if len(members) == 1:
            return unwrap(members[0])
    return hint


async def rebuild(marker: Mapping[str, Any], incoming: Incoming, hint: Any = None) -> Any:
    """A received blob as ``hint`` asks: ``bytes``, ``str``, an ``UploadFile`` (streaming: read as the provider
    reads); with no usable hint, ``bytes`` for bytes and responses, an upload for a file."""
    target = unwrap(hint)
    wants_upload = isinstance(target, type) and upload_base(target) is target
    if wants_upload or (target not in (str, bytes) and marker.get("kind") == "file"):
        return upload(marker, incoming, target if wants_upload else None)
    try:
        data = await incoming.read()
    finally:
        incoming.close()
    return data.decode() if target is str else data
