"""The guardrails example: TrustyAI FMS and lightspeed's redaction shield from PyPI as shields in hostel's table,
behind the Safety API and /v1/moderations — served by `hostel run`, and by a real OGX 1.5 server that declares the
Safety API as an external one implemented by hostel and names its own /v1/moderations as its Responses provider's
moderation_endpoint — driven by the unmodified llama-stack-client 0.7.5 and openai clients (network: the package
index only)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, python_path

EXAMPLE = EXAMPLES / "guardrails"
PY312 = python_path("3.12")
pytestmark = pytest.mark.skipif(not PY312, reason="these providers, OGX and the clients need Python 3.12")
TIKTOKEN_CL100K = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # cl100k_base's name in tiktoken's cache

EXPECTED = [
    "shields: [('pii', 'fms'), ('redaction', 'redaction'), ('secrets', 'redaction')]",
    "secrets: secrets",
    "run_shield pii, clean: pass",
    "run_shield pii, e-mail: error - Content violation detected by shield pii",
    "moderations redaction, ssn: redaction flagged=True ['sensitive_data']",
    "moderations redaction, clean: redaction flagged=False -",
    "moderations pii, e-mail: pii flagged=True ['pii']",
    "moderations default, e-mail: pii flagged=True ['pii']",
    "unknown shield: 404",
    # The server was stopped and started again: the shield registered at run time is still there.
    "shields after a restart: [('pii', 'fms'), ('redaction', 'redaction'), ('secrets', 'redaction')]",
    "moderations secrets, ssn: secrets flagged=True ['sensitive_data']",
    "unregistered secrets: 404",
]


def _run(*args: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "main.py"), *args],
        capture_output=True, text=True, timeout=1500, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_llama_stack_client_and_openai_client_use_shields_served_by_hostel_run() -> None:
    assert _run() == EXPECTED


def _tiktoken_cache(workdir: Path) -> Path:
    """tiktoken's cl100k_base file, which OGX's vector_io loads at start and would download from a host this
    machine cannot reach: the litellm wheel on PyPI ships a copy."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "-d", str(workdir / "litellm"), "litellm"],
        check=True,
    )  # fmt: skip
    cache = workdir / "tiktoken"
    cache.mkdir()
    with zipfile.ZipFile(next((workdir / "litellm").glob("litellm-*.whl"))) as wheel:
        member = f"litellm/litellm_core_utils/tokenizers/{TIKTOKEN_CL100K}"
        (cache / TIKTOKEN_CL100K).write_bytes(wheel.read(member))
    return cache


def test_an_ogx_server_serves_the_shields_and_its_responses_guardrails_use_them(tmp_path: Path) -> None:
    """`ogx run` with the example's external_apis_dir: the same clients get the same answers from OGX, and a
    Responses call with guardrails is refused when hostel's shield flags it (and answered when it does not)."""
    import uv

    assert PY312 is not None
    venv = tmp_path / "ogx-venv"
    subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", PY312, str(venv)], check=True)
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "-r", str(EXAMPLE / "ogx" / "requirements.txt"), str(REPO)],
        check=True,
    )  # fmt: skip
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(_tiktoken_cache(tmp_path))}
    assert _run("--ogx", str(venv / "bin" / "ogx"), env=env) == [
        *EXPECTED,
        "responses 'my ssn is 123-45-6789': Content blocked by safety guardrails (flagged for: sensitive_data)",
        "responses 'hello': echo from Llama Stack 0.7.3: hello ",
    ]
