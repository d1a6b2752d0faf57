"""``hostel call`` as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_config


def _hostel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hostel", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_call_prints_a_value_as_json(tmp_path: Path) -> None:
    done = _hostel(
        "call", str(make_config(tmp_path)), "t", "inspect_item", "--args", '{"item": {"name": "ü", "size": 2}}'
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"type": "Item", "double": 4, "name": "ü"}


def test_call_prints_a_stream_one_document_per_line(tmp_path: Path) -> None:
    done = _hostel("call", str(make_config(tmp_path)), "t", "count", "--args", '{"n": 4}')
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [0, 1, 2, 3]


def test_call_writes_bytes_as_they_are(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "call", str(make_config(tmp_path)), "t", "raw_bytes", "--args",
         '{"size": 200000}'],
        capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == bytes(i % 251 for i in range(200_000))


def test_call_reports_a_provider_exception_with_exit_1_and_no_traceback(tmp_path: Path) -> None:
    done = _hostel("call", str(make_config(tmp_path)), "t", "fail", "--args", '{"message": "kaputt"}')
    assert done.returncode == 1
    assert "raised ValueError in fail(): kaputt" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_call_with_bad_json_or_unknown_provider_is_usage_error(tmp_path: Path) -> None:
    path = str(make_config(tmp_path))
    bad = _hostel("call", path, "t", "greet", "--args", "{not json")
    assert bad.returncode == 2 and "must be JSON" in bad.stderr
    unknown = _hostel("call", path, "ghost", "greet")
    assert unknown.returncode == 2 and "no provider 'ghost'" in unknown.stderr and "providers: t" in unknown.stderr


def test_call_with_bad_config_exits_2(tmp_path: Path) -> None:
    path = make_config(tmp_path, providers={"tool_runtime": [{"provider_id": "t", "provider_type": "inline::nope"}]})
    done = _hostel("call", str(path), "t", "greet")
    assert done.returncode == 2 and "unknown provider type" in done.stderr and "Traceback" not in done.stderr


def test_call_debug_shows_the_providers_traceback_from_its_worker(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    done = _hostel("--debug", "call", str(config), "t", "fail", "--args", '{"message": "no such item"}')
    assert done.returncode == 1
    assert "hostel: error: provider 't' raised ValueError in fail(): no such item" in done.stderr
    # Logged once by the host, with the traceback the worker sent: the line of the provider that raised.
    assert done.stderr.count("fail() raised ValueError: no such item [call ") == 1
    assert "hostel_testprov/__init__.py" in done.stderr and "raise ValueError(message)" in done.stderr
