"""A plain (non-editable) install of hostel runs the example: provider venvs get hostel-sdk without the source tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import uv

from tests.conftest import EXAMPLES, REPO


def test_plain_install_runs_the_example_without_the_source_tree(tmp_path: Path, hostel_home: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", ".tox", "__pycache__", "*.egg-info"))
    site = tmp_path / "site"
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--target", str(site), "--no-deps", str(source)], check=True
    )
    example = tmp_path / "example"
    shutil.copytree(EXAMPLES / "conflicting_pins", example)
    shutil.rmtree(source)  # nothing may depend on the checkout any more
    env = {**os.environ, "PYTHONPATH": str(site), "HOSTEL_HOME": str(hostel_home)}
    done = subprocess.run(
        [sys.executable, "-c", "import hostel, runpy; runpy.run_path('main.py', run_name='__main__')"],
        cwd=example, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "idna 2.10" in done.stdout and "stream via new: ['h', 'o', 's', 't', 'e', 'l']" in done.stdout
    assert (
        str(site)
        in subprocess.run(
            [sys.executable, "-c", "import hostel_sdk; print(hostel_sdk.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
