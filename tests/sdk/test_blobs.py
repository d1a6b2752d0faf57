"""Blob markers, the receiving side's bounded queue, and rebuilding a blob as the type a parameter names."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator

import pytest
from starlette.datastructures import UploadFile
from starlette.responses import Response

from hostel_sdk import _blobs, _received, codec


def _outbox() -> _blobs.Outbox:
    return _blobs.Outbox(_blobs.ids())


def test_small_blobs_travel_inline_and_big_ones_by_id() -> None:
    outbox = _outbox()
    encoded = codec.loads(codec.dumps([b"abc", bytes(_blobs.INLINE_BYTES + 1), Response(b"hi", 201)], blobs=outbox))
    small, big, response = (_blobs.marker_of(v) for v in encoded)
    assert small == {"kind": "bytes", "size": 3, "data": "YWJj"}
    assert big == {"kind": "bytes", "size": _blobs.INLINE_BYTES + 1, "id": 1} and list(outbox.sources) == [1]
    assert response is not None and response["status_code"] == 201 and response["data"] == "aGk="
    assert ["content-length", "2"] in response["headers"]


def test_an_upload_says_its_name_type_and_size() -> None:
    upload = UploadFile(io.BytesIO(b"x" * 10), filename="n.txt", size=10)
    marker = _blobs.marker_of(codec.loads(codec.dumps(upload, blobs=_outbox())))
    assert marker is not None and (marker["kind"], marker["filename"], marker["size"]) == ("file", "n.txt", 10)


async def test_a_receiver_that_does_not_read_holds_the_sender_back() -> None:
    incoming = _received.Incoming()
    sent = 0

    async def send() -> None:
        nonlocal sent
        for _ in range(100):
            await incoming.put(b"x" * 1000)
            sent += 1
        await incoming.put(None)

    sender = asyncio.create_task(send())
    await asyncio.sleep(0.05)
    assert sent == 4  # the queue's bound: nothing more is taken until the reader reads
    assert len(await incoming.read(2500)) == 2500
    assert len(await incoming.read()) == 97_500
    await sender
    incoming.seek(0)
    assert await incoming.read(3) == b"xxx"  # what was read is spooled: a reader may seek back


async def test_a_closed_blob_stops_its_sender() -> None:
    incoming = _received.Incoming()
    for _ in range(4):
        await incoming.put(b"x")
    sender = asyncio.create_task(incoming.put(b"more"))
    await asyncio.sleep(0.01)
    incoming.close()
    with pytest.raises(EOFError):
        await incoming.put(b"after")
    sender.cancel()


@pytest.mark.parametrize(
    ("hint", "expected"),
    [(bytes, b"data"), (bytes | None, b"data"), (str, "data"), (None, b"data")],
)
async def test_a_bytes_blob_becomes_what_its_parameter_asks(hint: object, expected: object) -> None:
    marker = {"kind": "bytes", "size": 4, "data": "ZGF0YQ=="}
    assert await _received.rebuild(marker, _received.inline_incoming(marker), hint) == expected


async def test_a_file_blob_becomes_the_upload_class_its_parameter_names() -> None:
    class MyUpload(UploadFile):
        pass

    marker = {"kind": "file", "filename": "f.txt", "content_type": "text/plain", "size": 4, "data": "ZGF0YQ=="}
    made = await _received.rebuild(marker, _received.inline_incoming(marker), MyUpload)
    assert isinstance(made, MyUpload) and (made.filename, made.content_type, made.size) == ("f.txt", "text/plain", 4)
    assert await made.read(2) == b"da" and await made.read() == b"ta"
    plain = await _received.rebuild(marker, _received.inline_incoming(marker), None)
    assert isinstance(plain, UploadFile)  # starlette is imported here: the upload is one


def test_markers_anywhere_in_a_result_are_opened() -> None:
    value = {"a": [{"$hostel_blob": {"kind": "bytes", "data": "eA=="}}], "b": 1}
    opened = _blobs.materialize(value, lambda marker: _blobs.Blob(marker, None))
    assert isinstance(opened["a"][0], _blobs.Blob) and opened["b"] == 1
    assert _blobs.marker_of({"$hostel_blob": {}, "other": 1}) is None  # only a one-key object is a marker


async def _sent(incoming: _received.Incoming, chunks: list[bytes]) -> None:
    for chunk in chunks:
        await incoming.put(chunk)
    await incoming.put(None)


async def test_a_read_of_everything_keeps_it_in_memory_instead_of_spooling_it() -> None:
    chunks = [bytes([i]) * (1 << 20) for i in range(3)]  # past the 1 MiB a spool keeps in memory
    incoming = _received.Incoming()
    sender = asyncio.create_task(_sent(incoming, chunks))
    data = await incoming.read()
    await sender
    assert data == b"".join(chunks)
    assert not incoming._spool._rolled  # type: ignore[attr-defined]  # no temporary file written and read back
    assert await incoming.read() == b""
    incoming.seek(1 << 20)
    assert await incoming.read(2) == b"\x01\x01"  # seeking back still works
    assert await incoming.read() == data[(1 << 20) + 2 :]


async def test_a_read_of_the_rest_after_a_partial_read_joins_spool_and_kept_bytes() -> None:
    incoming = _received.Incoming()
    sender = asyncio.create_task(_sent(incoming, [b"abc", b"def", b"ghi"]))
    assert await incoming.read(4) == b"abcd"
    assert await incoming.read() == b"efghi"
    await sender
    incoming.seek(2)
    assert await incoming.read(5) == b"cdefg"  # across what was spooled and what was kept


async def test_a_read_of_everything_past_the_keep_limit_goes_through_the_spool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_received, "_KEEP_BYTES", 4)
    incoming = _received.Incoming()
    sender = asyncio.create_task(_sent(incoming, [b"abc", b"def", b"ghi"]))
    assert await incoming.read() == b"abcdefghi"
    await sender
    assert incoming._kept == b""
    incoming.seek(0)
    assert await incoming.read() == b"abcdefghi"


async def test_a_sender_failing_during_a_read_of_everything_loses_nothing_already_taken() -> None:
    incoming = _received.Incoming()
    await incoming.put(b"abc")
    await incoming.put(ConnectionError("the upload broke off"))
    with pytest.raises(ConnectionError):
        await incoming.read()
    incoming.seek(0)
    assert await incoming.read(3) == b"abc"


class _NoThreadUpload(UploadFile):
    async def read(self, size: int = -1) -> bytes:
        raise AssertionError("read through starlette's thread pool")


async def test_an_upload_held_in_memory_is_sent_as_views_without_a_thread_per_chunk() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB: two chunks of 1 MiB
    upload = _NoThreadUpload(io.BytesIO(data), filename="a.bin")  # as OGX's PreReadUploadFile holds an upload
    chunks = [chunk async for chunk in _blobs.Source(upload).chunks(1 << 20)]
    assert [len(chunk) for chunk in chunks] == [1 << 20, 1 << 20] and b"".join(chunks) == data
    assert all(isinstance(chunk, memoryview) and chunk.obj is data for chunk in chunks)  # no copy read out
    assert upload.file.tell() == len(data)  # read to its end, as reading it would leave it

    spooled = tempfile.SpooledTemporaryFile(max_size=1 << 30)  # noqa: SIM115 - closed below
    with spooled:
        spooled.write(data)
        spooled.seek(100)  # what was read already is not sent again
        sent = b"".join([chunk async for chunk in _blobs.Source(_NoThreadUpload(spooled)).chunks(1 << 20)])
        assert sent == data[100:] and spooled.tell() == len(data)


async def test_an_upload_on_disk_is_read_through_its_own_read() -> None:
    class Counted(UploadFile):
        reads = 0

        async def read(self, size: int = -1) -> bytes:
            Counted.reads += 1
            return await super().read(size)

    spooled = tempfile.SpooledTemporaryFile(max_size=10)  # noqa: SIM115 - closed below
    spooled.write(b"x" * 100)  # past max_size: rolled over to a file on disk
    spooled.seek(0)
    with spooled:
        chunks = [chunk async for chunk in _blobs.Source(Counted(spooled, filename="b.bin")).chunks(64)]
    assert b"".join(chunks) == b"x" * 100 and Counted.reads == 3


async def test_a_bytes_body_is_sent_as_views_into_it_not_copies() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    for value in (body, Response(body, media_type="application/octet-stream")):
        chunks = [chunk async for chunk in _blobs.Source(value).chunks(1 << 20)]
        assert all(isinstance(chunk, memoryview) and chunk.obj is body for chunk in chunks)
        messages = [_blobs.pb.BlobChunk(data=chunk).SerializeToString() for chunk in chunks]
        assert b"".join(_blobs.pb.BlobChunk.FromString(m).data for m in messages) == body


async def test_a_received_chunk_is_a_view_into_its_message_until_asked_for_bytes() -> None:
    message = _blobs.pb.BlobChunk(id=3, data=b"x" * 1000).SerializeToString()
    chunk = _blobs.pb.BlobChunk.FromString(message)
    assert chunk.id == 3 and isinstance(chunk.data, memoryview) and chunk.data.obj is message

    def blob() -> _blobs.Blob:
        async def fetch() -> AsyncIterator[bytes | memoryview]:
            for message in (b"ab", b"cd"):
                yield memoryview(message)

        return _blobs.Blob({"id": 1, "kind": "bytes"}, fetch)

    assert [type(part) for part in [part async for part in blob().views()]] == [memoryview, memoryview]
    chunks = [part async for part in blob().chunks()]
    assert chunks == [b"ab", b"cd"] and all(type(part) is bytes for part in chunks)  # bytes, as its API says
    assert await blob().read() == b"abcd"


async def test_a_result_blob_is_asked_for_when_opened_not_when_first_read() -> None:
    asked: list[int] = []

    class Stub:
        def read_blob(self, request: _blobs.pb.BlobRequest, metadata: object = None) -> object:
            asked.append(request.id)

            class Call:
                async def __aiter__(self) -> AsyncIterator[_blobs.pb.BlobChunk]:
                    yield _blobs.pb.BlobChunk(id=request.id, data=b"abc")

                def cancel(self) -> None:
                    pass

            return Call()

    opened = _blobs.Transfer(Stub()).values({"content": {_blobs.BLOB_KEY: {"id": 7, "kind": "bytes"}}})
    assert asked == [7]  # on its way while the caller handles the rest of the result
    assert await opened["content"].read() == b"abc" and asked == [7]
