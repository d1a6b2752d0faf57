"""The tables hostel keeps itself (benchmarks, datasets, scoring functions, shields, training jobs) and the routes
of the APIs OGX removed, through ``hostel run``: Llama Stack's shapes, routing by owner, persistence, re-priming."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, make_config, wait_until
from tests.served import Served

EVALPROV = REPO / "tests" / "providers" / "evalprov"
QA_ROWS = [{"answer": "a", "expected": "a"}, {"answer": "b", "expected": "c"}]


def _spec(**extra: Any) -> dict[str, Any]:
    return {"module": "hostel_evalprov", "pip_packages": [str(EVALPROV)], **extra}


def _entry(provider_id: str, role: str, **config: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": "inline::evalprov", "config": {"role": role, **config}}


def resource_config(tmp: Path) -> Path:
    return make_config(
        tmp,
        specs={
            # As ragas declares it: the benchmarks table is an API dependency no provider serves.
            "inline/eval/evalprov": _spec(api_dependencies=["datasetio", "benchmarks"]),
            "inline/datasetio/evalprov": _spec(),
            "inline/scoring/evalprov": _spec(),
            "inline/post_training/evalprov": _spec(),
            "inline/safety/evalprov": _spec(),
        },
        providers={
            "datasetio": [_entry("rows", "datasetio")],
            "eval": [_entry("lm", "eval", name="lm"), _entry("rg", "eval", name="rg")],
            "scoring": [_entry("judge", "scoring")],
            "post_training": [_entry("trainer", "post_training")],
            "safety": [_entry("guard", "safety", name="guard"), _entry("strict", "safety", name="strict")],
        },
        safety={"default_shield_id": "preset-guard"},
        hostel={"restart": {"backoff_initial_s": 0.05}},
        registered_resources={
            "datasets": [{"dataset_id": "qa", "provider_id": "rows", "source": {"type": "rows", "rows": QA_ROWS}}],
            "benchmarks": [
                {"benchmark_id": "preset", "dataset_id": "qa", "scoring_functions": ["acc"], "provider_id": "lm"}
            ],
            "shields": [
                {"shield_id": "preset-guard", "provider_id": "guard", "provider_shield_id": "guard-v1",
                 "params": {"words": ["bomb"]}}
            ],
        },
    )  # fmt: skip


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return resource_config(tmp_path_factory.mktemp("resources"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's server outlives each test, so its workers live under a home of their own."""
    return tmp_path_factory.mktemp("resources-home")


@pytest.fixture(scope="module")
def server(config: Path, home: Path) -> Iterator[Served]:
    running = Served(config, home)
    yield running
    running.stop()


def _known(server: Served, provider_id: str) -> list[str]:
    return server.post(f"/v1/providers/{provider_id}/known").json()  # type: ignore[no-any-return]


def test_benchmarks_from_the_config_and_registered_ones_go_to_their_providers(server: Served) -> None:
    registered = server.post(
        "/v1alpha/eval/benchmarks",
        {"benchmark_id": "arc", "dataset_id": "qa", "scoring_functions": ["acc"], "provider_id": "rg"},
    )
    assert registered.status_code == 200, registered.text
    assert registered.json() == {
        "identifier": "arc", "provider_id": "rg", "provider_resource_id": "arc", "type": "benchmark",
        "dataset_id": "qa", "scoring_functions": ["acc"],
    }  # fmt: skip
    listed = server.get("/v1alpha/eval/benchmarks").json()["data"]
    assert [(b["identifier"], b["provider_id"]) for b in listed] == [("preset", "lm"), ("arc", "rg")]
    assert server.get("/v1alpha/eval/benchmarks/arc").json()["provider_id"] == "rg"
    # Each provider was told of its own, the config's at its start: its registry is in its memory.
    assert _known(server, "lm") == ["preset"] and _known(server, "rg") == ["arc"]


def test_an_unknown_id_is_a_404_in_llama_stacks_shape(server: Served) -> None:
    for response in (
        server.get("/v1alpha/eval/benchmarks/nope"),
        server.post("/v1alpha/eval/benchmarks/nope/jobs", {"benchmark_config": {}}),
        server.get("/v1beta/datasetio/iterrows/nope"),
        server.get("/v1/shields/nope"),
        server.post("/v1/safety/run-shield", {"shield_id": "nope", "messages": []}),
    ):
        assert response.status_code == 404
        error = response.json()["error"]
        assert "'nope' not found" in error["detail"] and error["detail"] == error["message"]


def test_a_benchmark_without_a_provider_id_needs_one_when_two_could_own_it(server: Served) -> None:
    response = server.post("/v1alpha/eval/benchmarks", {"benchmark_id": "x", "dataset_id": "qa"})
    assert response.status_code == 404 and "name its provider_id" in response.json()["error"]["detail"]
    assert server.get("/v1alpha/eval/benchmarks/x").status_code == 404


def test_a_registration_the_provider_refuses_is_not_kept(server: Served) -> None:
    response = server.post(
        "/v1alpha/eval/benchmarks",
        {"benchmark_id": "bad", "dataset_id": "qa", "provider_id": "lm", "metadata": {"refuse": True}},
    )
    assert response.status_code == 400 and "refuses benchmark 'bad'" in response.json()["error"]["detail"]
    assert server.get("/v1alpha/eval/benchmarks/bad").status_code == 404
    assert "bad" not in _known(server, "lm")


def test_an_evaluation_runs_to_completion_reading_the_tables_through_deps(server: Served) -> None:
    job = server.post("/v1alpha/eval/benchmarks/preset/jobs", {"benchmark_config": {"eval_candidate": {}}}).json()
    assert job["status"] == "in_progress"
    status = f"/v1alpha/eval/benchmarks/preset/jobs/{job['job_id']}"
    assert wait_until(lambda: server.get(status).json()["status"] == "completed", timeout=20)
    result = server.get(status + "/result").json()
    assert result["scores"]["acc"]["aggregated_results"] == {"accuracy": 0.5}
    rows = server.post("/v1alpha/eval/benchmarks/preset/evaluations",
                       {"input_rows": [{"answer": "a", "expected": "a"}], "scoring_functions": ["acc"],
                        "benchmark_config": {}}).json()  # fmt: skip
    assert rows["scores"]["acc"]["score_rows"] == [{"score": 1.0}]


def test_datasets_register_iterate_and_append(server: Served) -> None:
    rows = [{"answer": str(i), "expected": str(i)} for i in range(3)]
    registered = server.post(
        "/v1beta/datasets", {"purpose": "eval/question-answer", "source": {"type": "rows", "rows": rows}}
    ).json()
    dataset_id = registered["identifier"]
    assert dataset_id.startswith("dataset-") and registered["provider_id"] == "rows"
    page = server.get(f"/v1beta/datasetio/iterrows/{dataset_id}", params={"start_index": 1, "limit": 1}).json()
    assert page == {"data": [rows[1]], "has_more": True}
    appended = server.post(f"/v1beta/datasetio/append-rows/{dataset_id}", {"rows": [{"answer": "x"}]})
    assert appended.status_code == 200
    assert len(server.get(f"/v1beta/datasetio/iterrows/{dataset_id}").json()["data"]) == 4
    assert server.get("/v1beta/datasetio/iterrows/qa", params={"limit": "many"}).status_code == 400
    assert server.request("DELETE", f"/v1beta/datasets/{dataset_id}").status_code == 200
    assert server.get(f"/v1beta/datasets/{dataset_id}").status_code == 404


def test_scoring_goes_to_the_provider_of_its_functions(server: Served) -> None:
    registered = server.post(
        "/v1/scoring-functions", {"scoring_fn_id": "exact", "description": "equal", "return_type": {"type": "number"}}
    )
    assert registered.json()["provider_id"] == "judge"
    scored = server.post(
        "/v1/scoring/score",
        {"input_rows": [{"answer": "a", "expected": "a"}, {"answer": "a", "expected": "b"}],
         "scoring_functions": {"exact": None}},
    ).json()  # fmt: skip
    assert scored["results"]["exact"]["score_rows"] == [{"score": 1.0}, {"score": 0.0}]
    assert server.post("/v1/scoring/score", {"input_rows": [], "scoring_functions": {"nope": None}}).status_code == 404


def test_shields_register_and_run_shield_goes_to_their_provider(server: Served) -> None:
    registered = server.post("/v1/shields", {"shield_id": "pii", "provider_id": "strict", "params": {"words": ["ssn"]}})
    assert registered.status_code == 200, registered.text
    assert registered.json() == {
        "identifier": "pii", "provider_id": "strict", "provider_resource_id": "pii", "type": "shield",
        "params": {"words": ["ssn"]},
    }  # fmt: skip
    listed = server.get("/v1/shields").json()["data"]
    assert [(s["identifier"], s["provider_id"]) for s in listed] == [("preset-guard", "guard"), ("pii", "strict")]
    assert server.get("/v1/shields/preset-guard").json()["provider_resource_id"] == "guard-v1"
    assert _known(server, "strict") == ["pii"] and _known(server, "guard") == ["preset-guard"]
    flagged = server.post(
        "/v1/safety/run-shield", {"shield_id": "pii", "messages": [{"role": "user", "content": "my ssn"}]}
    )
    assert flagged.json() == {"violation": {"violation_level": "error", "user_message": "strict blocked it",
                                            "metadata": {"words": ["ssn"], "shield": "pii"}}}  # fmt: skip
    passed = server.post("/v1/safety/run-shield", {"shield_id": "pii", "messages": [{"role": "user", "content": "hi"}]})
    assert passed.json() == {"violation": None}
    refused = server.post("/v1/shields", {"shield_id": "empty", "provider_id": "guard"})
    assert refused.status_code == 400 and "params.words is required" in refused.json()["error"]["detail"]
    assert server.get("/v1/shields/empty").status_code == 404
    assert server.post("/v1/safety/run-shield", {"shield_id": "pii"}).status_code == 400


def test_moderations_pick_the_shield_their_model_names_or_the_default(server: Served) -> None:
    server.post("/v1/shields", {"shield_id": "words", "provider_id": "strict", "provider_shield_id": "words-v2",
                                "params": {"words": ["darn"]}})  # fmt: skip

    def moderate(body: dict[str, Any], query: str = "") -> Any:
        return server.post("/v1/moderations" + query, body)

    # By the shield's id or its provider's id (as Llama Stack's router matches), sent as the provider's id.
    for model in ("words", "words-v2"):
        result = moderate({"input": ["oh darn", "fine"], "model": model}).json()
        assert result["model"] == "words-v2"
        assert [r["flagged"] for r in result["results"]] == [True, False]
        assert result["results"][0]["metadata"] == {"provider": "strict", "words": ["darn"]}
    # No model: safety.default_shield_id; `?model=` in the URL for callers that post only the input.
    default = moderate({"input": "a bomb"}).json()
    assert default["model"] == "guard-v1" and default["results"][0]["flagged"] is True
    assert moderate({"input": "a bomb"}, "?model=words").json()["results"][0]["flagged"] is False
    unknown = moderate({"input": "x", "model": "nope"})
    assert unknown.status_code == 404 and "no shield is moderation model 'nope'" in unknown.json()["error"]["detail"]
    assert moderate({"input": 3}).status_code == 400
    gone = server.request("DELETE", "/v1/shields/words")
    assert gone.status_code == 200 and server.get("/v1/shields/words").status_code == 404
    assert "words" not in _known(server, "strict")


def test_a_training_job_is_routed_to_the_provider_that_runs_it(server: Served) -> None:
    started = server.post("/v1alpha/post-training/supervised-fine-tune", {"model": "m", "training_config": {}}).json()
    job = started["job_uuid"]
    assert {"job_uuid": job} in server.get("/v1alpha/post-training/jobs").json()["data"]
    status = server.get("/v1/post-training/job/status", params={"job_uuid": job}).json()
    assert status == {"job_uuid": job, "status": "scheduled"}
    assert server.post("/v1alpha/post-training/job/cancel", {"job_uuid": job}).status_code == 200
    assert server.get("/v1alpha/post-training/job/status", params={"job_uuid": job}).json()["status"] == "cancelled"


def test_a_restarted_worker_is_told_again_of_what_it_owns(server: Served) -> None:
    before = server.post("/v1/providers/rg/pid").json()
    assert server.post("/v1/providers/rg/restart").status_code == 200
    assert wait_until(lambda: server.post("/v1/providers/rg/pid").json() != before, timeout=30)
    assert _known(server, "rg") == ["arc"]  # registered at run time, before the restart


def test_registrations_survive_a_restart_of_the_host(server: Served, config: Path, home: Path) -> None:
    assert server.stop() == 0
    again = Served(config, home)
    try:
        assert again.get("/v1alpha/eval/benchmarks/arc").json()["provider_id"] == "rg"
        assert _known(again, "rg") == ["arc"]
        assert again.get("/v1/scoring-functions/exact").status_code == 200
        assert [b["identifier"] for b in again.get("/v1alpha/eval/benchmarks").json()["data"]] == ["preset", "arc"]
        assert again.get("/v1/shields/pii").json()["provider_id"] == "strict"
        assert _known(again, "strict") == ["pii"]
    finally:
        again.stop()


LLAMA_STACK_CLIENT_075 = """
import sys, time
from llama_stack_client import LlamaStackClient, NotFoundError
client = LlamaStackClient(base_url=sys.argv[1])
client.alpha.benchmarks.register(benchmark_id="mmlu", dataset_id="qa", scoring_functions=["acc"], provider_id="lm")
print("benchmarks", sorted(b.identifier for b in client.alpha.benchmarks.list()))
print("retrieved", client.alpha.benchmarks.retrieve("mmlu").provider_id)
job = client.alpha.eval.run_eval("mmlu", benchmark_config={"eval_candidate": {"type": "model", "model": "m",
                                                                             "sampling_params": {}}})
while client.alpha.eval.jobs.status(job.job_id, benchmark_id="mmlu").status != "completed":
    time.sleep(0.1)
result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id="mmlu")
print("scores", result.scores["acc"].aggregated_results)
ds = client.beta.datasets.register(purpose="eval/question-answer", source={"type": "rows", "rows": [{"q": 1}]},
                                   dataset_id="tiny")
print("dataset", ds.identifier, ds.provider_id, client.beta.datasets.iterrows("tiny").data)
try:
    client.alpha.benchmarks.retrieve("nope")
except NotFoundError:
    print("missing benchmark: NotFoundError")
client.shields.register(shield_id="curse", provider_id="guard", params={"words": ["darn"]})
print("shields", [(s.identifier, s.provider_id) for s in client.shields.list()])
print("run_shield", client.safety.run_shield(shield_id="curse", messages=[{"role": "user", "content": "darn"}])
      .violation.metadata)
print("moderation", [r.flagged for r in client.moderations.create(input=["darn", "ok"], model="curse").results])
client.shields.delete("curse")
try:
    client.shields.retrieve("curse")
except NotFoundError:
    print("missing shield: NotFoundError")
"""


def test_llama_stack_client_075_speaks_to_these_routes(tmp_path: Path, hostel_home: Path) -> None:
    """The unmodified llama-stack-client 0.7.5 (the last with alpha.benchmarks and alpha.eval), on Python 3.12."""
    python = _client_075(tmp_path)
    served = Served(resource_config(tmp_path / "cfg"), hostel_home)
    try:
        run = subprocess.run(
            [str(python), "-c", LLAMA_STACK_CLIENT_075, served.url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        served.stop()
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "benchmarks ['mmlu', 'preset']",
        "retrieved lm",
        "scores {'accuracy': 0.5}",
        "dataset tiny rows [{'q': 1}]",
        "missing benchmark: NotFoundError",
        "shields [('preset-guard', 'guard'), ('curse', 'guard')]",
        "run_shield {'words': ['darn'], 'shield': 'curse'}",
        "moderation [True, False]",
        "missing shield: NotFoundError",
    ]


def _client_075(tmp_path: Path) -> Path:
    import asyncio

    import uv

    from hostel.envs.interpreters import InterpreterCache

    python312 = asyncio.run(InterpreterCache(tmp_path).find("3.12")).path
    venv = tmp_path / "lsc075"
    subprocess.run([uv.find_uv_bin(), "venv", "--quiet", "--python", str(python312), str(venv)], check=True)
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         "llama-stack-client==0.7.5"],
        check=True,
    )  # fmt: skip
    return venv / "bin" / "python"


def test_resource_kinds_match_the_table_apis_the_plan_accepts() -> None:
    from hostel.config.order import HOST_TABLE_APIS
    from hostel.resources import TABLE_APIS

    assert set(TABLE_APIS) == set(HOST_TABLE_APIS)


def test_a_resource_naming_an_unknown_provider_is_a_config_error(tmp_path: Path) -> None:
    import yaml

    from hostel.config import load_run_config
    from hostel.errors import ConfigError

    config = resource_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["registered_resources"]["benchmarks"][0]["provider_id"] = "nobody"
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_run_config(config)
    assert "registered_resources.benchmarks[0].provider_id" in str(caught.value)
    assert "no provider 'nobody'" in str(caught.value)


def test_a_shield_owned_by_a_provider_of_another_api_is_a_config_error(tmp_path: Path) -> None:
    import yaml

    from hostel.config import load_run_config
    from hostel.errors import ConfigError

    config = resource_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["registered_resources"]["shields"][0]["provider_id"] = "judge"
    raw["safety"] = {"default_shield": "typo"}
    config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_run_config(config)
    assert (
        "registered_resources.shields[0].provider_id: 'judge' is a scoring provider; shields belong to safety "
        "providers (guard, strict)" in str(caught.value)
    )
    assert "safety.default_shield" in str(caught.value)


def test_tables_route_by_owner_and_forget_config_rows_until_read_again(tmp_path: Path) -> None:
    from hostel.config import load_run_config
    from hostel.resources import BENCHMARK, DATASET, SCORING_FUNCTION, ResourceStore, ResourceTables

    config = load_run_config(resource_config(tmp_path))
    providers = {"eval": ["lm", "rg"], "datasetio": ["rows"], "scoring": ["judge"], "post_training": ["trainer"],
                 "safety": ["guard", "strict"]}  # fmt: skip
    tables = ResourceTables(ResourceStore(tmp_path / "state" / "registry.sqlite3"))
    tables.configure(config, providers)
    assert tables.route("eval", {"benchmark_id": "preset"}) == "lm"
    assert tables.route("datasetio", {"dataset_id": "qa", "limit": 1}) == "rows"
    assert tables.route("eval", {"benchmark_id": "unknown"}) is None
    tables.register(SCORING_FUNCTION, tables.record(SCORING_FUNCTION, {"scoring_fn_id": "f"}))
    assert tables.route("scoring", {"scoring_functions": {"f": None}}) == "judge"
    tables.store.put_job("j1", "post_training", "trainer")
    assert tables.route("post_training", {"job_uuid": "j1"}) == "trainer"
    tables.unregister(DATASET, "qa")
    assert tables.get(DATASET, "qa") is None
    tables.configure(config, providers)  # a reload reads the config again
    assert tables.get(DATASET, "qa") is not None
    reopened = ResourceTables(ResourceStore(tmp_path / "state" / "registry.sqlite3"))
    reopened.configure(config, providers)
    assert reopened.get(SCORING_FUNCTION, "f") is not None and reopened.store.job_owner("j1") == "trainer"
    with pytest.raises(Exception, match="name its provider_id"):
        tables.record(BENCHMARK, {"benchmark_id": "x", "dataset_id": "qa"})


async def test_a_second_host_on_a_served_config_keeps_its_registrations_to_itself(
    tmp_path: Path, home: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running server holds its config's state; a host started beside it on the same config says so and keeps
    what it registers in memory, rather than share (and drift from) the server's file."""
    from hostel import Host

    config = resource_config(tmp_path)
    served = Served(config, home)
    try:
        caplog.set_level(logging.WARNING, "hostel._statelock")
        monkeypatch.setenv("HOSTEL_HOME", str(home))
        async with Host.from_config(config) as beside:
            await beside.registry.register("scoring_function", scoring_fn_id="beside_only", provider_id="judge")
            assert "beside_only" in [f["identifier"] for f in beside.registry.resources("scoring_function")]
            # What a provider's deps see of the host's own table, its methods by name (Host.api's ApiHandle).
            listed = await beside.api("datasets").list_datasets()
            assert listed["data"], "the config registers datasets"
            assert [d["identifier"] for d in listed["data"]] == [
                d["identifier"] for d in beside.registry.resources("dataset")
            ]
        assert "another host (pid" in caplog.text and f"pid {served.proc.pid})" in caplog.text
        listed = served.get("/v1/scoring-functions").json()["data"]
        assert "beside_only" not in [f["identifier"] for f in listed]
    finally:
        served.stop()
