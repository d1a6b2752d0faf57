"""The env probe's bytecode writing, in a fresh interpreter (it changes the import system for good)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
sys.prefix = sys.argv[1]
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from hostel_sdk._probe import compile_imported, write_env_bytecode_on_import
assert write_env_bytecode_on_import()
import inside_env, outside_env
print(compile_imported())
"""


def test_the_probe_writes_bytecode_while_importing_but_only_inside_the_env(tmp_path: Path) -> None:
    env, outside = tmp_path / "env", tmp_path / "outside"
    for directory, name in ((env, "inside_env"), (outside, "outside_env")):
        directory.mkdir()
        (directory / f"{name}.py").write_text("VALUE = 1\n")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(env), str(outside)],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [p.name for p in (env / "__pycache__").iterdir()] == [
        f"inside_env.cpython-{sys.version_info[0]}{sys.version_info[1]}.pyc"
    ]
    assert not (outside / "__pycache__").exists()
    assert done.stdout.strip() == "0"  # written while importing: nothing left to compile afterwards
