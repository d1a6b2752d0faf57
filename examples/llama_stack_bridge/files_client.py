"""Upload, list, read and delete a file through OGX's Files API with the unmodified ``openai`` client.

python files_client.py http://127.0.0.1:8321      # against `ogx run ogx-files.yaml`
"""

from __future__ import annotations

import hashlib
import io
import sys

from openai import NotFoundError, OpenAI


def main() -> None:
    client = OpenAI(base_url=f"{sys.argv[1]}/v1", api_key="unused")
    providers = client.get("/providers", cast_to=dict)["data"]
    print("files provider:", next(p["provider_type"] for p in providers if p["api"] == "files"))
    body = b"hello from a hostel worker\n" * 40_000  # about 1 MiB: it crosses to the worker in chunks
    upload = io.BytesIO(body)
    upload.name = "greeting.txt"
    stored = client.files.create(file=upload, purpose="assistants")
    print("uploaded:", stored.filename, stored.bytes, "bytes")
    print("listed:", stored.id in [f.id for f in client.files.list().data])
    content = client.files.content(stored.id).content
    print("content matches:", hashlib.sha256(content).hexdigest() == hashlib.sha256(body).hexdigest())
    print("deleted:", client.files.delete(stored.id).deleted)
    try:
        client.files.retrieve(stored.id)
    except NotFoundError as exc:
        print("after deleting: HTTP", exc.status_code)


if __name__ == "__main__":
    main()
