"""Providers of the APIs OGX removed, shaped as Llama Stack's are: each keeps its own registry of what was
registered with it, in memory (so a new worker knows nothing until the host tells it again)."""

from __future__ import annotations

import asyncio
import os
from typing import Any


class Eval:
    """An eval provider like lmeval or ragas: jobs that run in the background and score a dataset's rows."""

    def __init__(self, config: dict[str, Any], deps: dict[Any, Any]) -> None:
        self.name = config.get("name", "eval")
        self.deps = deps
        self.benchmarks: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    async def register_benchmark(self, benchmark: dict[str, Any]) -> None:
        if benchmark.get("metadata", {}) and benchmark["metadata"].get("refuse"):
            raise ValueError(f"{self.name} refuses benchmark {benchmark['identifier']!r}")
        self.benchmarks[benchmark["identifier"]] = benchmark

    async def unregister_benchmark(self, benchmark_id: str) -> None:
        self.benchmarks.pop(benchmark_id, None)

    async def known(self) -> list[str]:
        return sorted(self.benchmarks)

    async def pid(self) -> int:
        return os.getpid()

    async def run_eval(self, benchmark_id: str, benchmark_config: dict[str, Any]) -> dict[str, Any]:
        if benchmark_id not in self.benchmarks:
            raise ValueError(f"benchmark {benchmark_id!r} was never registered with {self.name}")
        # As ragas does: the benchmark from the host's table, the rows from the dataset's provider.
        table = await self.deps["benchmarks"].get_benchmark(benchmark_id=benchmark_id)
        job_id = f"{self.name}-job-{len(self.jobs)}"
        self.jobs[job_id] = {"job_id": job_id, "status": "in_progress"}
        asyncio.get_running_loop().create_task(self._evaluate(job_id, table, benchmark_config))
        return dict(self.jobs[job_id])

    async def _evaluate(self, job_id: str, benchmark: dict[str, Any], config: dict[str, Any]) -> None:
        rows = await self.deps["datasetio"].iterrows(dataset_id=benchmark["dataset_id"], limit=100)
        await asyncio.sleep(0.3)
        scores = {}
        for fn in benchmark["scoring_functions"]:
            score_rows = [{"score": float(row["answer"] == row["expected"])} for row in rows["data"]]
            mean = sum(r["score"] for r in score_rows) / max(len(score_rows), 1)
            scores[fn] = {"score_rows": score_rows, "aggregated_results": {"accuracy": mean}}
        self.jobs[job_id] = {
            "job_id": job_id,
            "status": "completed",
            "scores": scores,
            "generations": [{"answer": row["answer"]} for row in rows["data"]],
        }

    async def job_status(self, benchmark_id: str, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        return {"job_id": job_id, "status": job["status"]}

    async def job_result(self, benchmark_id: str, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        return {"generations": job.get("generations", []), "scores": job.get("scores", {})}

    async def job_cancel(self, benchmark_id: str, job_id: str) -> None:
        self.jobs[job_id]["status"] = "cancelled"

    async def evaluate_rows(
        self,
        benchmark_id: str,
        input_rows: list[dict[str, Any]],
        scoring_functions: list[str],
        benchmark_config: dict[str, Any],
    ) -> dict[str, Any]:
        score_rows = [{"score": float(row["answer"] == row["expected"])} for row in input_rows]
        return {
            "generations": input_rows,
            "scores": {fn: {"score_rows": score_rows, "aggregated_results": {}} for fn in scoring_functions},
        }


class DatasetIO:
    """A datasetio provider: rows given at registration, served and appended to."""

    def __init__(self, config: dict[str, Any], deps: dict[Any, Any]) -> None:
        self.datasets: dict[str, list[dict[str, Any]]] = {}

    async def register_dataset(self, dataset: dict[str, Any]) -> None:
        source = dataset["source"]
        self.datasets[dataset["identifier"]] = list(source.get("rows", [])) if source.get("type") == "rows" else []

    async def unregister_dataset(self, dataset_id: str) -> None:
        self.datasets.pop(dataset_id, None)

    async def iterrows(self, dataset_id: str, start_index: int | None = None, limit: int | None = None) -> Any:
        rows = self.datasets[dataset_id]
        start = start_index or 0
        end = len(rows) if limit is None or limit < 0 else start + limit
        return {"data": rows[start:end], "has_more": end < len(rows)}

    async def append_rows(self, dataset_id: str, rows: list[dict[str, Any]]) -> None:
        self.datasets[dataset_id].extend(rows)


class Scoring:
    """A scoring provider with one built-in function and the ones registered with it."""

    def __init__(self, config: dict[str, Any], deps: dict[Any, Any]) -> None:
        self.functions: dict[str, dict[str, Any]] = {}

    async def register_scoring_function(self, function: dict[str, Any]) -> None:
        self.functions[function["identifier"]] = function

    async def score(self, input_rows: list[dict[str, Any]], scoring_functions: dict[str, Any]) -> dict[str, Any]:
        results = {}
        for fn in scoring_functions:
            if fn not in self.functions:
                raise ValueError(f"scoring function {fn!r} was never registered here")
            rows = [{"score": float(r.get("answer") == r.get("expected"))} for r in input_rows]
            results[fn] = {"score_rows": rows, "aggregated_results": {"accuracy": sum(x["score"] for x in rows)}}
        return {"results": results}


class PostTraining:
    """A post_training provider whose jobs are remembered in memory (a real one submits them to Kubeflow)."""

    def __init__(self, config: dict[str, Any], deps: dict[Any, Any]) -> None:
        self.jobs: dict[str, str] = {}

    async def supervised_fine_tune(self, job_uuid: str, model: str, **config: Any) -> dict[str, Any]:
        self.jobs[job_uuid] = "scheduled"
        return {"job_uuid": job_uuid}

    async def get_training_jobs(self) -> dict[str, Any]:
        return {"data": [{"job_uuid": job} for job in self.jobs]}

    async def get_training_job_status(self, job_uuid: str) -> dict[str, Any]:
        return {"job_uuid": job_uuid, "status": self.jobs.get(job_uuid, "unknown")}

    async def cancel_training_job(self, job_uuid: str) -> None:
        self.jobs[job_uuid] = "cancelled"


class Safety:
    """A safety provider shaped as Llama Stack's: shields registered with it (in memory), each flagging the words
    its ``params`` name; ``run_moderation`` answers for the shield whose provider id is the model."""

    def __init__(self, config: dict[str, Any], deps: dict[Any, Any]) -> None:
        self.name = config.get("name", "safety")
        self.shields: dict[str, dict[str, Any]] = {}

    async def register_shield(self, shield: dict[str, Any]) -> None:
        if not shield.get("params", {}).get("words"):
            raise ValueError(f"{self.name} refuses shield {shield['identifier']!r}: params.words is required")
        self.shields[shield["identifier"]] = shield

    async def unregister_shield(self, identifier: str) -> None:
        self.shields.pop(identifier, None)

    async def known(self) -> list[str]:
        return sorted(self.shields)

    def _flags(self, shield: dict[str, Any], text: str) -> list[str]:
        return [word for word in shield["params"]["words"] if word in text]

    async def run_shield(self, shield_id: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        shield = self.shields[shield_id]
        found = [w for m in messages for w in self._flags(shield, str(m.get("content", "")))]
        if not found:
            return {"violation": None}
        return {"violation": {"violation_level": "error", "user_message": f"{self.name} blocked it",
                              "metadata": {"words": found, "shield": shield_id}}}  # fmt: skip

    async def run_moderation(self, input: str | list[str], model: str | None = None) -> dict[str, Any]:
        shield = next(s for s in self.shields.values() if s["provider_resource_id"] == model)
        texts = [input] if isinstance(input, str) else input
        results = []
        for text in texts:
            found = self._flags(shield, text)
            results.append({"flagged": bool(found), "categories": {"words": bool(found)},
                            "metadata": {"provider": self.name, "words": found}})  # fmt: skip
        return {"id": "modr-1", "model": model, "results": results}


_ROLES = {
    "eval": Eval, "datasetio": DatasetIO, "scoring": Scoring, "post_training": PostTraining, "safety": Safety,
}  # fmt: skip


async def get_provider_impl(config: Any, deps: dict[Any, Any]) -> Any:
    return _ROLES[config["role"]](config, deps)
