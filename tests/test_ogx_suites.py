"""OGX's own integration suites against OGX's own providers, in process and bridged through hostel: the same tests
pass both ways (scripts/ogx_suites.py, which a user can run too). Network: the package index only; inference is
answered from OGX's own recordings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, hostel_pids, python_path

pytestmark = [
    pytest.mark.skipif(not python_path("3.12"), reason="OGX 1.5 needs Python >= 3.12, not found here"),
    pytest.mark.timeout(3600),  # the set-up and 16 OGX servers' runs: about 20 minutes here, more with a cold cache
]

# The envs (by provider type) each suite's bridged server must have run its providers in: a provider named with
# `module: hostel` that the server ran in process instead would pass the same tests and prove nothing.
BRIDGED = {"files": {"localfs"}, "batches": {"reference"}, "vector_io": {"faiss"}, "inference": {"ollama"},
           "responses": {"builtin", "tavily-search", "model-context-protocol"}, "messages": {"builtin"},
           "interactions": {"builtin"}, "file_processors": {"auto"}}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    workdir = tmp_path_factory.mktemp("ogx-suites")
    report = workdir / "results.json"
    command = [sys.executable, str(REPO / "scripts" / "ogx_suites.py"), "--workdir", str(workdir), "--json",
               str(report)]  # fmt: skip
    log = workdir / "script.log"
    with log.open("wb") as out:
        # A process group of its own, with its servers in it: if anything goes wrong here, all of it is stopped.
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=3500)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(log.read_text(errors="replace")[-3000:])  # the table, for the log
    assert report.exists(), log.read_text(errors="replace")[-5000:]
    assert not hostel_pids(str(workdir)), "a bridged provider's worker outlived its server"
    return {r["suite"]: r for r in json.loads(report.read_text())}


def test_each_bridged_server_ran_its_providers_in_hostel_workers_and_the_in_process_one_none(
    results: dict[str, dict[str, object]],
) -> None:
    for suite, expected in BRIDGED.items():
        assert results[suite]["in_process"]["workers"] == [], suite  # type: ignore[index]
        ran = {name.rpartition("-")[0] for name in results[suite]["bridged"]["workers"]}  # type: ignore[index]
        assert expected <= ran, (suite, ran)


def _passed(run: dict[str, object]) -> set[str]:
    tests = run["tests"]
    assert isinstance(tests, dict)
    return {name for name, outcome in tests.items() if outcome == "passed"}


def test_ogx_files_suite_passes_the_same_tests_bridged_as_in_process(results: dict[str, dict[str, object]]) -> None:
    files = results["files"]
    assert files["differ"] == []
    assert _passed(files["bridged"]) == _passed(files["in_process"]) and len(_passed(files["bridged"])) == 6


def test_ogx_batches_suite_passes_the_same_tests_bridged_as_in_process(results: dict[str, dict[str, object]]) -> None:
    """OGX's reference batches provider reads and writes files and calls inference, all through its deps."""
    batches = results["batches"]
    assert batches["differ"] == []
    assert _passed(batches["bridged"]) == _passed(batches["in_process"]) and len(_passed(batches["bridged"])) >= 20


def test_ogx_vector_io_suite_passes_the_same_tests_bridged_as_in_process(
    results: dict[str, dict[str, object]],
) -> None:
    """faiss and sqlite-vec, with inference replayed from OGX's recordings. sqlite-vec is a SQLite extension: on a
    Python that cannot load one (pyenv's default build), pysqlite3 stands in for sqlite3 both ways; only where not
    even that installs are its tests deselected, both ways, by name."""
    vector_io = results["vector_io"]
    assert vector_io["differ"] == []
    passed = _passed(vector_io["bridged"])
    assert passed == _passed(vector_io["in_process"]) and len(passed) >= 90
    assert any("vector_io=faiss" in name for name in passed)
    if not vector_io["deselected"]:
        assert sum("vector_io=sqlite-vec" in name for name in passed) >= 90


def test_ogx_inference_suite_passes_the_same_tests_bridged_as_in_process(results: dict[str, dict[str, object]]) -> None:
    """OGX's remote::ollama bridged: its calls to Ollama are answered from OGX's recordings inside the worker, as
    inside the server (the bridge passes OGX_TEST_INFERENCE_MODE on), and streamed completions, whose chunks do not
    fit OGX's own model, reach the server as the provider sent them."""
    inference = results["inference"]
    assert inference["differ"] == []
    passed = _passed(inference["bridged"])
    assert passed == _passed(inference["in_process"]) and len(passed) >= 45
    assert any("test_openai_completion_streaming" in name for name in passed)


def test_ogx_responses_suite_passes_the_same_tests_bridged_as_in_process(results: dict[str, dict[str, object]]) -> None:
    """OGX's agent loop (inline::builtin) bridged: it calls the server's inference (streams of OpenAI's chunks),
    vector stores, files, tool runtimes (web search and MCP, bridged too), conversations and prompts through its
    deps, each result as its own types; an MCP tool's token (a field OGX's model leaves out of its dumps) reaches
    it, an OpenAI error's body reaches it from the server, so that it reports the Responses API's error code, and
    the web search provider reads the request's provider data (OGX's test id, another provider's key) as none, as
    in process, rather than refusing the call."""
    responses = results["responses"]
    assert responses["unexpected"] == []  # one test races its own server (scripts/ogx_suite_configs.py RACES)
    races = set(responses["differ"])  # type: ignore[arg-type]
    passed = _passed(responses["bridged"]) - races
    assert passed == _passed(responses["in_process"]) - races and len(passed) >= 150
    for name in ("test_mcp_authorization_bearer", "invalid_base64_image_failure_code_is_spec_compliant",
                 "test_conversation_multi_turn_and_streaming", "test_response_non_streaming_web_search"):  # fmt: skip
        assert any(name in test for test in passed), name


def test_ogx_messages_suite_passes_the_same_tests_bridged_as_in_process(results: dict[str, dict[str, object]]) -> None:
    """OGX's Anthropic Messages API (inline::builtin), translating to the server's inference through its deps."""
    messages = results["messages"]
    assert messages["differ"] == []
    passed = _passed(messages["bridged"])
    assert passed == _passed(messages["in_process"]) and len(passed) >= 15


def test_ogx_interactions_suite_differs_only_where_the_provider_reaches_into_the_servers_router(
    results: dict[str, dict[str, object]],
) -> None:
    """OGX's Google Interactions API (inline::builtin). For a Gemini model it passes the request through to Gemini's
    own endpoint after looking into the server's inference router for the provider object behind the model; a
    worker has only the API's methods, so bridged it translates to a chat completion instead, its path for any other
    provider, which OGX did not record. Exactly those tests differ (EXPECTED in scripts/ogx_suite_configs.py names
    each); the rest, and what fails in process for OGX's own reasons, are the same both ways."""
    interactions = results["interactions"]
    assert interactions["unexpected"] == []
    assert len(interactions["differ"]) == 5  # type: ignore[arg-type]
    passed = _passed(interactions["bridged"])
    assert passed < _passed(interactions["in_process"]) and passed  # the rest still pass bridged


def test_ogx_file_processors_suite_passes_the_same_tests_bridged_as_in_process(
    results: dict[str, dict[str, object]],
) -> None:
    """OGX's inline::auto file processor bridged: each PDF the tests upload crosses to its worker beside the call."""
    processors = results["file_processors"]
    assert processors["differ"] == []
    passed = _passed(processors["bridged"])
    assert passed == _passed(processors["in_process"]) and len(passed) >= 20
