"""The eval providers example: TrustyAI LM-Eval and ragas from PyPI behind hostel's eval, benchmarks and
datasets routes, driven by the unmodified llama-stack-client 0.7.5 (network: the package index only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, has_python


@pytest.mark.skipif(not has_python("3.12"), reason="these providers and the client need Python 3.12")
def test_llama_stack_client_075_evaluates_with_lmeval_and_ragas() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "eval_providers" / "main.py")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines == [
        "benchmarks: [('arc', 'lmeval'), ('similarity', 'ragas')]",
        "dataset qa: 2 rows",
        "arc: job completed",
        "arc scores: {'arc:acc': {'acc': 0.75}, 'arc:acc_stderr': {'acc_stderr': 0.05}}",
        "similarity: job completed",
        "similarity scores: {'answer_similarity': {'answer_similarity': 0.82}}",
        "unknown benchmark: 404",
    ], done.stdout
