"""OGX's own providers hosted by hostel itself (no OGX server): `module: ogx==1.5.0` names OGX's registry, the run
config's `storage:` backends are registered in the worker, files cross as bytes (network: the package index)."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostel import Host, RemoteError
from hostel_sdk._blobs import Blob
from tests.conftest import python_path

pytestmark = pytest.mark.skipif(not python_path("3.12"), reason="OGX 1.5 needs Python >= 3.12, not found here")


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    config = {
        "version": 2,
        "providers": {
            "files": [
                {
                    "provider_id": "localfs",
                    "provider_type": "inline::localfs",
                    "module": "ogx==1.5.0",
                    "python": "3.12",
                    "config": {
                        "storage_dir": str(tmp_path / "files"),
                        "metadata_store": {"backend": "sql_default", "table_name": "files_metadata"},
                    },
                }
            ]
        },
        "storage": {
            "backends": {
                "kv_default": {"type": "kv_sqlite", "db_path": str(tmp_path / "kv.db")},
                "sql_default": {"type": "sql_sqlite", "db_path": str(tmp_path / "sql.db")},
            }
        },
    }
    async with Host.from_config(config) as started:
        yield started


async def test_ogx_localfs_in_a_hostel_worker_keeps_its_metadata_in_the_configured_backend(
    host: Host, tmp_path: Path
) -> None:
    files = host.provider("localfs")
    body = b"stored by OGX's own provider\n" * 5000  # over the inline limit: it crosses in chunks
    upload = io.BytesIO(body)
    upload.name = "notes.txt"
    stored = await files.openai_upload_file(request={"purpose": "assistants"}, file=upload)
    assert (stored["filename"], stored["bytes"], stored["purpose"]) == ("notes.txt", len(body), "assistants")
    content = await files.openai_retrieve_file_content(request={"file_id": stored["id"]})
    assert isinstance(content, Blob) and content.kind == "response" and await content.read() == body
    listed = await files.openai_list_files(request={})
    assert [f["id"] for f in listed["data"]] == [stored["id"]]
    with sqlite3.connect(tmp_path / "sql.db") as db:  # the backend the run config's storage: section names
        assert db.execute("select count(*) from openai_files").fetchone() == (1,)
    with pytest.raises(RemoteError) as missing:
        await files.openai_retrieve_file(request={"file_id": "file-" + "0" * 32})
    error = missing.value
    assert error.type_name == "ogx_api.common.errors.OpenAIFileObjectNotFoundError" and error.status_code == 404
