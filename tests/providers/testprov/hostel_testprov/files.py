"""A files provider shaped like OGX's (``openai_upload_file(request, file)``, content as a ``Response``) that never
holds a whole file: uploads are written to disk as they are read, content goes out as a streamed file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, Response, StreamingResponse

CHUNK = 1 << 20


class StreamingFiles:
    def __init__(self, config: dict[str, Any]) -> None:
        self.directory = Path(config.get("directory") or tempfile.mkdtemp(prefix="hostel-files-"))
        self.directory.mkdir(parents=True, exist_ok=True)

    async def openai_upload_file(self, request: Any, file: UploadFile) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        file_id = f"file-{len(os.listdir(self.directory)) + 1}"
        with open(self.directory / file_id, "wb") as out:
            while chunk := await file.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return {
            "id": file_id,
            "bytes": size,
            "sha256": digest.hexdigest(),
            "filename": file.filename,
            "content_type": file.content_type,
            "upload_class": [c.__name__ for c in type(file).__mro__],
            "purpose": (request or {}).get("purpose") if isinstance(request, dict) else None,
        }

    async def openai_retrieve_file_content(self, request: Any) -> Response:
        file_id = request["file_id"] if isinstance(request, dict) else request.file_id
        path = self.directory / file_id
        if not path.exists():
            raise FileNotFoundError(f"no file {file_id!r}")
        return FileResponse(path, media_type="application/octet-stream", filename=f"{file_id}.bin")

    async def small_response(self, text: str) -> Response:
        return Response(text.encode(), media_type="text/plain", headers={"x-note": "small"}, status_code=201)

    async def generated(self, chunks: int, size: int = CHUNK) -> StreamingResponse:
        async def body() -> Any:
            for i in range(chunks):
                yield bytes([i % 256]) * size

        return StreamingResponse(body(), media_type="application/octet-stream")

    async def raw(self, size: int) -> bytes:
        return bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)

    async def length(self, data: bytes) -> list[Any]:
        return [type(data).__name__, len(data), hashlib.sha256(data).hexdigest()]

    async def text_of(self, data: str) -> str:
        return data.upper()

    async def peek_then_rewind(self, file: UploadFile) -> list[str]:
        head = await file.read(4)
        await file.seek(0)
        whole = await file.read()
        return [head.decode(), whole.decode()]

    async def ignore_upload(self, file: UploadFile) -> str:
        return f"ignored {file.filename}"

    async def peak_rss_mb(self, reset: bool = False) -> float:
        return peak_rss_mb(reset)


def peak_rss_mb(reset: bool = False) -> float:
    """This process's peak resident memory since the last reset (``VmHWM``), in MiB; ``reset`` starts it again."""
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> StreamingFiles:
    return StreamingFiles(dict(config or {}))
