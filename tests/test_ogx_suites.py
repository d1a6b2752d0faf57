"""OGX's own integration suites against OGX's own providers, in process and bridged through hostel: the same tests
pass both ways (scripts/ogx_suites.py, which a user can run too). Network: the package index only; inference is
answered from OGX's own recordings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, hostel_pids, python_path

pytestmark = pytest.mark.skipif(not python_path("3.12"), reason="OGX 1.5 needs Python >= 3.12, not found here")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    workdir = tmp_path_factory.mktemp("ogx-suites")
    report = workdir / "results.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ogx_suites.py"), "--workdir", str(workdir), "--json", str(report)],
        capture_output=True, text=True, timeout=3000, check=False,
    )  # fmt: skip
    print(done.stdout)  # the table, for the log
    assert report.exists(), done.stderr[-5000:]
    assert not hostel_pids(str(workdir)), "a bridged provider's worker outlived its server"
    return {r["suite"]: r for r in json.loads(report.read_text())}


def _passed(run: dict[str, object]) -> set[str]:
    tests = run["tests"]
    assert isinstance(tests, dict)
    return {name for name, outcome in tests.items() if outcome == "passed"}


def test_ogx_files_suite_passes_the_same_tests_bridged_as_in_process(results: dict[str, dict[str, object]]) -> None:
    files = results["files"]
    assert files["differ"] == []
    assert _passed(files["bridged"]) == _passed(files["in_process"]) and len(_passed(files["bridged"])) == 6


def test_ogx_vector_io_suite_passes_the_same_tests_bridged_as_in_process(
    results: dict[str, dict[str, object]],
) -> None:
    """faiss, with inference replayed from OGX's recordings; sqlite-vec too where the Python loads SQLite
    extensions (a pyenv build without them cannot run it at all: its tests are deselected both ways, by name)."""
    vector_io = results["vector_io"]
    assert vector_io["differ"] == []
    passed = _passed(vector_io["bridged"])
    assert passed == _passed(vector_io["in_process"]) and len(passed) >= 90
    assert any("vector_io=faiss" in name for name in passed)
