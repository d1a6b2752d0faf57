"""The eval providers example: TrustyAI LM-Eval and ragas from PyPI behind hostel's eval, benchmarks and
datasets routes — served by `hostel run`, and by a real OGX 1.5 server that declares those APIs as external
ones implemented by hostel — driven by the unmodified llama-stack-client 0.7.5 (network: the package index
only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ogx_server_venv, python_path

EXAMPLE = EXAMPLES / "eval_providers"
PY312 = python_path("3.12")
pytestmark = pytest.mark.skipif(not PY312, reason="these providers, OGX and the client need Python 3.12")


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "main.py"), *args], capture_output=True, text=True, timeout=1200, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


EXPECTED = [
    "benchmarks: [('arc', 'lmeval'), ('similarity', 'ragas')]",
    "dataset qa: 2 rows",
    "arc: job completed",
    "arc scores: {'arc:acc': {'acc': 0.75}, 'arc:acc_stderr': {'acc_stderr': 0.05}}",
    "similarity: job completed",
    "similarity scores: {'answer_similarity': {'answer_similarity': 0.82}}",
    "training jobs: ['tune-1']",
    "unknown benchmark: 404",
]


def test_llama_stack_client_075_evaluates_with_lmeval_and_ragas() -> None:
    assert _run() == EXPECTED


def test_an_ogx_server_answers_the_removed_apis_through_hostel(tmp_path: Path) -> None:
    """`ogx run` with the example's external_apis_dir: the same client, the same answers, from OGX."""
    ogx = ogx_server_venv(tmp_path / "ogx-venv", EXAMPLE / "ogx" / "requirements.txt")
    assert _run("--ogx", str(ogx)) == EXPECTED
