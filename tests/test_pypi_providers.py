"""Real providers from PyPI, unmodified, through the `module:` form (network: the package index only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, has_python


@pytest.mark.skipif(not has_python("3.12"), reason="these providers need Python >= 3.12, not found here")
def test_pypi_providers_example_runs_six_real_providers_side_by_side() -> None:
    envs = Path(os.environ["HOSTEL_HOME"]) / "envs"
    before = set(envs.glob("*")) if envs.is_dir() else set()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "pypi_providers" / "main.py")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "csoai: python 3.12" in done.stdout and "llama-stack-api 0.7" in done.stdout
    assert "'state_counts': {'OBSERVED': 1, 'NOT_OBSERVED': 1, 'INVALID': 1}" in done.stdout
    assert "'verification_counts': {'VALID': 1, 'INVALID': 1}" in done.stdout
    # lmeval submitted its LMEvalJob to the fake Kubernetes API and read the results back
    assert "lmeval: python 3.12" in done.stdout
    assert "lmeval: completed {'arc:acc': {'acc': 0.75}, 'arc:acc_stderr': {'acc_stderr': 0.05}}" in done.stdout
    # kft runs on its own, older Llama Stack beside the others, thanks to its constraint and spec_overrides
    assert "kft: python 3.12" in done.stdout and "llama-stack 0.2.22" in done.stdout
    assert "kft: jobs {'data': []}" in done.stdout
    # trustyai-fms, with the llama-stack-api it forgot, asks its (fake) detector and reports the PII
    assert "fms: pass / error - Content violation detected by shield pii (confidence: 0.97" in done.stdout
    # lightspeed's redaction shield (spec extracted from its package) edits the request in place
    assert "redaction: python 3.12" in done.stdout and "llama-stack 0.6.0" in done.stdout
    assert "redaction: {'violation': None} -> my ssn is [SSN]" in done.stdout
    # ragas (inline) evaluated rows from the fake datasetio with the fake embeddings, both through deps
    assert "ragas: python 3.12" in done.stdout
    assert "ragas: answer_similarity per row [1.0, 0.64, 0.51]" in done.stdout
    # One env per provider: a `module:` provider's env is not built again once its package's spec is adopted.
    made = [path.name.rsplit("-", 1)[0] for path in set(envs.glob("*")) - before if not path.name.startswith(".")]
    assert len(made) == len(set(made)), sorted(made)
    # And pruning for this config removes none of the envs it runs on.
    used = re.findall(r"env (\S+-[0-9a-f]{16})", done.stdout)
    assert len(used) == 6, done.stdout
    pruned = subprocess.run(
        [sys.executable, "-m", "hostel", "envs", "prune", str(EXAMPLES / "pypi_providers" / "run.yaml"), "--dry-run"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "CSOAI_DID_JSON": "/nonexistent", "FMS_DETECTOR_URL": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert pruned.returncode == 0, pruned.stderr
    assert not [name for name in used if name in pruned.stdout], pruned.stdout


@pytest.mark.skipif(not has_python("3.12"), reason="these providers need Python >= 3.12, not found here")
def test_a_module_entry_naming_a_type_the_package_does_not_declare(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        "providers:\n  eval:\n    - provider_id: wrong\n      provider_type: remote::nope\n"
        "      module: llama_stack_provider_csoai==0.1.0\n      python: '3.12'\n      config: {did_json: x}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "check", "--deep", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "declares no provider 'remote::nope'; it declares: remote::csoai" in done.stderr


@pytest.mark.slow
def test_ramalama_stack_builds_and_imports_on_its_own_llama_stack(tmp_path: Path) -> None:
    """ramalama-stack 0.2.5 pins llama-stack==0.2.14 and pulls ~6 GB of CUDA libraries it never imports."""
    config = tmp_path / "run.yaml"
    config.write_text(
        "providers:\n  inference:\n    - provider_id: ramalama\n      provider_type: remote::ramalama\n"
        "      module: ramalama_stack==0.2.5\n      python: '3.12'\n      config: {url: http://127.0.0.1:8080}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "check", "--deep", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
