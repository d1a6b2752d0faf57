"""Bytes across the boundary with a real worker: uploads the provider reads as they arrive, content it returns as a
starlette Response or bytes, and memory that stays bounded for a file far bigger than a message."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostel import Host
from hostel_sdk._blobs import Blob
from tests.conftest import make_config, provider_spec

FILES = {
    "inline/files/streaming": provider_spec(
        module="hostel_testprov.files", config_class=None, provider_data_validator=None
    )
}


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    providers = {"files": [{"provider_id": "files", "provider_type": "inline::streaming",
                            "config": {"directory": str(tmp_path / "stored")}}]}  # fmt: skip
    async with Host.from_config(make_config(tmp_path, providers=providers, specs=FILES)) as started:
        yield started


def _file(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes (not compressible, not all one value); return their sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
    with path.open("wb") as out:
        written = 0
        while written < size:
            part = block[: min(len(block), size - written)]
            out.write(part)
            digest.update(part)
            written += len(part)
    return digest.hexdigest()


async def test_an_upload_arrives_as_the_upload_class_the_provider_names_with_its_name_and_type(host: Host) -> None:
    from starlette.datastructures import UploadFile

    files = host.provider("files")
    upload = UploadFile(io.BytesIO(b"hello"), filename="a.txt", headers=_headers({"content-type": "text/plain"}))
    stored = await files.openai_upload_file(request={"purpose": "assistants"}, file=upload)
    assert (stored["bytes"], stored["filename"], stored["content_type"]) == (5, "a.txt", "text/plain")
    assert "UploadFile" in stored["upload_class"] and stored["purpose"] == "assistants"
    assert stored["sha256"] == hashlib.sha256(b"hello").hexdigest()


async def test_a_file_far_bigger_than_a_message_goes_both_ways_in_chunks(host: Host, tmp_path: Path) -> None:
    files = host.provider("files")
    source = tmp_path / "big.bin"
    expected = _file(source, 3 * (1 << 20) + 12345)  # several chunks, and not a whole number of them
    with source.open("rb") as handle:
        stored = await files.openai_upload_file(request={"purpose": "batch"}, file=handle)
    assert (stored["bytes"], stored["sha256"], stored["filename"]) == (source.stat().st_size, expected, "big.bin")
    content = await files.openai_retrieve_file_content(request={"file_id": stored["id"]})
    assert isinstance(content, Blob) and content.kind == "response" and content.inline is None
    assert content.media_type == "application/octet-stream" and content.status_code == 200
    assert ("content-disposition", f'attachment; filename="{stored["id"]}.bin"') in content.headers
    digest, sizes = hashlib.sha256(), []
    async for chunk in content.chunks():
        digest.update(chunk)
        sizes.append(len(chunk))
    assert digest.hexdigest() == expected and max(sizes) <= 1 << 20 and len(sizes) >= 4


async def test_small_results_come_inline_and_bytes_and_text_are_rebuilt_as_asked(host: Host) -> None:
    files = host.provider("files")
    small = await files.small_response(text="ok")
    assert (small.inline, small.status_code, small.media_type) == (b"ok", 201, "text/plain")
    assert ("x-note", "small") in small.headers
    raw = await files.raw(size=300_000)
    assert isinstance(raw, Blob) and raw.kind == "bytes" and len(await raw.read()) == 300_000
    payload = os.urandom(200_000)
    assert await files.length(data=payload) == ["bytes", 200_000, hashlib.sha256(payload).hexdigest()]
    assert await files.length(data=b"tiny") == ["bytes", 4, hashlib.sha256(b"tiny").hexdigest()]
    assert await files.text_of(data="ok") == "OK"
    generated = await files.generated(chunks=3, size=1000)
    assert await generated.read() == b"\x00" * 1000 + b"\x01" * 1000 + b"\x02" * 1000


async def test_an_upload_can_be_read_in_parts_and_rewound(host: Host) -> None:
    files = host.provider("files")
    body = b"abcd" + b"x" * 100_000
    assert await files.peek_then_rewind(file=io.BytesIO(body)) == ["abcd", body.decode()]


async def test_an_upload_the_provider_does_not_read_does_not_hold_the_call_or_the_next_one(
    host: Host, tmp_path: Path
) -> None:
    files = host.provider("files")
    source = tmp_path / "unread.bin"
    _file(source, 20 * (1 << 20))
    with source.open("rb") as handle:
        assert await files.ignore_upload(file=handle) == "ignored unread.bin"
    assert (await files.small_response(text="next")).inline == b"next"


async def test_a_provider_reads_and_stores_files_through_its_dependency(tmp_path: Path) -> None:
    specs = {
        **FILES,
        "inline/vector_io/store": provider_spec(
            module="hostel_testprov.store", config_class="hostel_testprov.store.StoreConfig",
            provider_data_validator=None, api_dependencies=[], optional_api_dependencies=["files"],
        ),
    }  # fmt: skip
    providers = {
        "files": [{"provider_id": "files", "provider_type": "inline::streaming", "config": {}}],
        "vector_io": [{"provider_id": "store", "provider_type": "inline::store"}],
    }
    source = tmp_path / "doc.bin"
    expected = _file(source, 2 * (1 << 20) + 7)
    async with Host.from_config(make_config(tmp_path, providers=providers, specs=specs)) as host:
        with source.open("rb") as handle:
            stored = await host.provider("files").openai_upload_file(request={}, file=handle)
        seen = await host.provider("store").file_content_through_deps(file_id=stored["id"])
        made = await host.provider("store").upload_through_deps(size=3 * (1 << 20) + 1)
    assert seen == ["Blob", source.stat().st_size, expected]
    assert (made["filename"], made["bytes"], made["purpose"]) == ("made.bin", 3 * (1 << 20) + 1, "batch")
    assert made["sha256"] == hashlib.sha256(bytes(i % 253 for i in range(3 * (1 << 20) + 1))).hexdigest()


async def test_what_cannot_be_sent_is_a_type_error_naming_it(host: Host) -> None:
    with pytest.raises(TypeError, match=r"cannot encode a builtins\.object as JSON"):
        await host.provider("files").length(data=object())


async def test_a_200_mb_file_each_way_keeps_host_and_worker_memory_bounded(host: Host, tmp_path: Path) -> None:
    """What a chunked, back-pressured transfer promises: neither side ever holds the file."""
    files = host.provider("files")
    source, copy = tmp_path / "200mb.bin", tmp_path / "copy.bin"
    expected = _file(source, 200 * (1 << 20))
    worker_before = await files.peak_rss_mb(reset=True)
    host_before = peak_rss_mb(reset=True)
    with source.open("rb") as handle:
        stored = await files.openai_upload_file(request={}, file=handle)
    content = await files.openai_retrieve_file_content(request={"file_id": stored["id"]})
    digest = hashlib.sha256()
    with copy.open("wb") as out:
        async for chunk in content.chunks():
            out.write(chunk)
            digest.update(chunk)
    host_growth = peak_rss_mb() - host_before
    worker_growth = await files.peak_rss_mb() - worker_before
    assert stored["sha256"] == expected == digest.hexdigest()
    assert host_growth < 64 and worker_growth < 64, (host_growth, worker_growth)


def peak_rss_mb(reset: bool = False) -> float:
    """This process's peak resident memory since the last reset (``VmHWM``), in MiB; ``reset`` starts it again."""
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def _headers(values: dict[str, str]) -> object:
    from starlette.datastructures import Headers

    return Headers(values)
