"""Air-gapped builds: bundle size and the offline build from it, against a connected ``--locked`` build from a warm
installer cache, the same run.

    python bench/bench_pack.py [--json bench/results.json] [--example pypi_providers] [--home DIR]

Copies the example to a temporary directory, locks and packs it (``--home``: an existing HOSTEL_HOME whose envs
make the lock's unlocked builds quick; default a new one), then builds every env twice into new homes: connected
(``hostel build --locked``, the installer's cache warm from the lock's builds), and offline from the bundle
(``unshare -n``: no network at all; empty installer caches). Needs ``unshare``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _hostel(*args: str, cwd: Path, home: Path, offline: bool = False) -> float:
    env = {**os.environ, "HOSTEL_HOME": str(home)}
    command = [sys.executable, "-m", "hostel", *args]
    if offline:
        env |= {"UV_CACHE_DIR": str(home / "uv-cache"), "PIP_CACHE_DIR": str(home / "pip-cache")}
        command = ["unshare", "-n", *command]
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def can_unshare() -> bool:
    """Whether this user may make a network namespace (``unshare -n``)."""
    found = shutil.which("unshare") is not None
    return found and subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


async def bench(example: str, home: str) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hostel-bench-pack-") as tmpdir:
        tmp = Path(tmpdir)
        project = tmp / example
        shutil.copytree(EXAMPLES / example, project, ignore=shutil.ignore_patterns("hostel.lock"))
        packing_home = Path(home) if home else tmp / "packing-home"
        _hostel("lock", "run.yaml", cwd=project, home=packing_home)
        pack_s = _hostel("pack", "run.yaml", "-o", str(tmp / "bundle.tar"), cwd=project, home=packing_home)
        connected_s = _hostel("build", "--locked", "run.yaml", cwd=project, home=tmp / "connected")
        offline_s = _hostel("build", "--locked", "--bundle", str(tmp / "bundle.tar"), "run.yaml", cwd=project,
                            home=tmp / "offline", offline=True)  # fmt: skip
        bundle_mb = (tmp / "bundle.tar").stat().st_size / 2**20
        envs_mb = _size(tmp / "offline" / "envs") / 2**20
        return [
            {"example": example, "what": "hostel pack (makes the locked envs, downloads and checks the wheels)",
             "seconds": pack_s, "MB": bundle_mb},
            {"example": example, "what": "connected --locked build, warm cache", "seconds": connected_s,
             "MB": envs_mb},
            {"example": example, "what": "offline --bundle build, empty caches, unshare -n", "seconds": offline_s,
             "MB": envs_mb},
        ]  # fmt: skip


def main() -> None:
    run_cli(__doc__ or "", "pack", "air-gapped builds: bundle and offline build", bench, example="pypi_providers",
            home="")  # fmt: skip


if __name__ == "__main__":
    main()
