"""bench/_steps/sitecustomize.py, the stamps bench/bench_bridge_steps.py reads: nothing else runs it, so a rename in
hostel would silently leave a step unstamped (and the benchmark with no calls to show)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOKS = REPO / "bench" / "_steps"


def _targets() -> tuple[tuple[str, str, str, str, str | None], ...]:
    spec = importlib.util.spec_from_file_location("bench_steps_hooks", HOOKS / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # HOSTEL_BENCH_STEPS is unset here: it installs nothing
    return module.TARGETS  # type: ignore[no-any-return]


def test_every_step_names_a_function_hostel_has() -> None:
    for module_name, owner, attribute, _, _ in _targets():
        found = vars(getattr(importlib.import_module(module_name), owner))
        assert attribute in found, f"{module_name}.{owner}.{attribute} is gone: update bench/_steps/sitecustomize.py"


def test_a_process_started_with_the_hooks_stamps_its_frames_and_writes_them_when_asked(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import pathlib, time
        from hostel_sdk import _messages as pb
        frame = pb.SessionRequest(7, call=pb.CallRequest(method="echo")).SerializeToString()
        assert pb.SessionRequest.FromString(frame).id == 7
        pathlib.Path({str(tmp_path)!r}, "dump").touch()
        for _ in range(50):
            if list(pathlib.Path({str(tmp_path)!r}).glob("steps-*.json")):
                break
            time.sleep(0.1)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(HOOKS), "HOSTEL_BENCH_STEPS": f"timed:echo:{tmp_path}"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    (written,) = tmp_path.glob("steps-*.json")
    labels = [label for _, label in json.loads(written.read_text())["stamps"]]
    assert labels == ["request.serialize", "request.parse", "request.parsed"]
