"""What a user of llama-stack-client 0.7.5 does with eval providers: register a dataset and benchmarks, run
an evaluation on each, poll the jobs, read the scores; then start a training job and list the jobs.
Unmodified client; any server with these routes.

    python client.py http://127.0.0.1:8321
"""

from __future__ import annotations

import logging
import sys
import time

from llama_stack_client import LlamaStackClient, NotFoundError

ROWS = [
    {"user_input": "What colour is the sky?", "response": "The sky is blue.", "reference": "The sky is blue."},
    {"user_input": "What do cats drink?", "response": "Cats drink milk.", "reference": "Cats drink water."},
]
CANDIDATE = {"eval_candidate": {"type": "model", "model": "any", "sampling_params": {}}}


def evaluate(client: LlamaStackClient, benchmark_id: str) -> dict[str, object]:
    job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)  # type: ignore[arg-type]
    while (status := client.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id).status) in (
        "in_progress",
        "scheduled",
    ):
        time.sleep(0.2)
    result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
    print(f"{benchmark_id}: job {status}")
    return {name: score.aggregated_results for name, score in result.scores.items()}


def main(base_url: str) -> None:
    client = LlamaStackClient(base_url=base_url)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the client logs every request at INFO
    client.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": ROWS}, dataset_id="qa"
    )
    client.alpha.benchmarks.register(
        benchmark_id="arc", dataset_id="arc", scoring_functions=["acc"], provider_id="lmeval",
        provider_benchmark_id="arc_easy",
    )  # fmt: skip
    client.alpha.benchmarks.register(
        benchmark_id="similarity", dataset_id="qa", scoring_functions=["answer_similarity"], provider_id="ragas"
    )
    print("benchmarks:", [(b.identifier, b.provider_id) for b in client.alpha.benchmarks.list()])
    print("dataset qa:", len(client.beta.datasets.iterrows("qa").data), "rows")
    print("arc scores:", evaluate(client, "arc"))
    scores = evaluate(client, "similarity")
    print("similarity scores:", {name: {k: round(v, 2) for k, v in s.items()} for name, s in scores.items()})  # type: ignore[attr-defined]
    # The client has no post-training resource any more; its generic calls reach the routes.
    tune = {"job_uuid": "tune-1", "model": "granite", "training_config": {"n_epochs": 1},
            "hyperparam_search_config": {}, "logger_config": {}}  # fmt: skip
    client.post("/v1alpha/post-training/supervised-fine-tune", body=tune, cast_to=object)
    jobs = client.get("/v1alpha/post-training/jobs", cast_to=object)
    print("training jobs:", [job["job_uuid"] for job in jobs["data"]])  # type: ignore[index]
    try:
        client.alpha.eval.run_eval("nope", benchmark_config=CANDIDATE)  # type: ignore[arg-type]
    except NotFoundError as exc:
        print("unknown benchmark:", exc.status_code)


if __name__ == "__main__":
    main(sys.argv[1])
