"""Builds a ``hostel-sdk`` wheel from the ``hostel_sdk`` package this host runs, for every provider venv.

Works the same for an editable checkout and for a plain ``pip install``: the files come from the imported
package, not from the source tree, and the wheel is cached by content hash.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import hostel_sdk

# Keep in step with sdk/pyproject.toml (a test checks they agree).
SDK_REQUIREMENTS = ("grpcio>=1.60", "orjson>=3.9", "pydantic>=2.6,<3")
_SUFFIXES = {".py", ".pyi", ".typed"}


def _package_files() -> list[tuple[str, Path]]:
    root = Path(hostel_sdk.__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in _SUFFIXES and "__pycache__" not in path.parts:
            files.append((f"hostel_sdk/{path.relative_to(root).as_posix()}", path))
    return files


def sdk_fingerprint() -> str:
    """A hash of the hostel_sdk files and requirements: changes whenever the wheel would."""
    digest = hashlib.sha256()
    digest.update(hostel_sdk.__version__.encode())
    digest.update("\n".join(SDK_REQUIREMENTS).encode())
    for arcname, path in _package_files():
        digest.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def sdk_wheel(cache_dir: Path, fingerprint: str | None = None) -> Path:
    """Return the path of the hostel-sdk wheel for this host, building it into ``cache_dir`` if needed."""
    fingerprint = fingerprint or sdk_fingerprint()
    version = f"{hostel_sdk.__version__}+h{fingerprint[:12]}"
    path = cache_dir / f"hostel_sdk-{version}-py3-none-any.whl"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    dist_info = f"hostel_sdk-{version}.dist-info"
    metadata = "\n".join(
        ["Metadata-Version: 2.1", "Name: hostel-sdk", f"Version: {version}", "Requires-Python: >=3.10"]
        + [f"Requires-Dist: {r}" for r in SDK_REQUIREMENTS]
    )
    wheel = "Wheel-Version: 1.0\nGenerator: hostel\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = [(arcname, p.read_bytes()) for arcname, p in _package_files()]
    entries += [(f"{dist_info}/METADATA", metadata.encode() + b"\n"), (f"{dist_info}/WHEEL", wheel.encode())]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries) + f"{dist_info}/RECORD,,\n"
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
            zf.writestr(f"{dist_info}/RECORD", record)
        os.replace(tmp, path)  # atomic: a concurrent host sees the whole wheel or none
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
