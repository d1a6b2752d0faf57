"""The routes of the APIs Llama Stack served until OGX removed them, as its last release that had them
served them (llama-stack-client 0.7.5 speaks them): benchmarks and eval under ``/v1alpha/eval``, datasets and
datasetio under ``/v1beta``, scoring functions and scoring under ``/v1``, post-training under
``/v1alpha/post-training`` (and ``/v1/post-training``, where older clients look), shields and safety under
``/v1`` with the OpenAI ``/v1/moderations``. See docs/resources.md and docs/safety.md.

Each call goes to the provider that owns what it names (the benchmark, the dataset, the scoring function,
the shield, the training job), as Llama Stack's routers route it; an id the tables do not know is a 404.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hostel.errors import HostelError, RoutingError
from hostel.gateway.http_errors import bad_request, error_body, headers_for, status_for
from hostel.gateway.requests import (
    BadRequestError,
    call_timeout,
    json_body,
    json_response,
    read_provider_data,
    refusal_headers,
    reply,
)
from hostel.resources import Registry

_Handler = Callable[[Request], Awaitable[Response]]
_TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "supervised_fine_tune": {"hyperparam_search_config": {}, "logger_config": {}, "model": None,
                             "checkpoint_dir": None, "algorithm_config": None},
    "preference_optimize": {"hyperparam_search_config": {}, "logger_config": {}},
}  # fmt: skip


class ResourceHost(Protocol):
    """What the routes need of a host (``hostel.Host``, or the bridge's view of one on another loop): calls, and
    its registry (``hostel.resources.Registry``)."""

    @property
    def registry(self) -> Registry:
        """The host's resource registry."""
        ...

    async def call(
        self, provider_id: str, method: str, args: Sequence[Any], kwargs: dict[str, Any], *,
        timeout: float | None = None, provider_data: Any = None,
    ) -> Any:  # fmt: skip
        """Call a provider's method."""
        ...


def _llama_stack_error(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    """hostel's error body with Llama Stack's ``detail`` beside its message."""
    response = json_response({"error": {**body["error"], "detail": body["error"]["message"]}}, status)
    response.headers.update(headers or {})
    return response


class ResourceRoutes:
    """Handlers for the routes; each answers errors as Llama Stack does, with hostel's fields as well."""

    def __init__(self, host: ResourceHost, max_body: int) -> None:
        self.host = host
        self.max_body = max_body

    def _handler(self, work: Callable[[Request], Awaitable[Any]]) -> _Handler:
        async def handle(request: Request) -> Response:
            try:
                return reply(await work(request))
            except BadRequestError as exc:
                return _llama_stack_error(
                    bad_request(exc.message, type_name=exc.type_name), exc.status, refusal_headers(exc.status)
                )
            except HostelError as exc:
                return _llama_stack_error(error_body(exc), status_for(exc), headers_for(exc))

        return handle

    async def _call(self, request: Request, provider_id: str, method: str, kwargs: dict[str, Any]) -> Any:
        return await self.host.call(
            provider_id,
            method,
            (),
            kwargs,
            timeout=call_timeout(request),
            provider_data=read_provider_data(request),
        )

    def _only(self, api: str) -> str:
        ids = self.host.registry.providers_of(api)
        if len(ids) != 1:
            raise RoutingError(f"{len(ids)} {api} providers ({', '.join(ids) or 'none'}); this route needs one")
        return ids[0]

    # -- tables -------------------------------------------------------------------------------------------

    def table_routes(self, kind: str, path: str, id_param: str) -> list[Route]:
        """List and register at ``path``; get and unregister at ``path/{id}`` (``id_param`` may carry a
        converter: ``identifier:path`` for ids with slashes)."""
        name = id_param.split(":", 1)[0]

        async def listing(request: Request) -> Any:
            return {"data": self.host.registry.resources(kind)}

        async def register(request: Request) -> Any:
            return await self.host.registry.register(kind, **await json_body(request, self.max_body))

        async def get(request: Request) -> Any:
            return self.host.registry.resource(kind, request.path_params[name])

        async def unregister(request: Request) -> Any:
            await self.host.registry.unregister(kind, request.path_params[name])
            return None

        return [
            Route(path, self._handler(listing), methods=["GET"]),
            Route(path, self._handler(register), methods=["POST"]),
            Route(f"{path}/{{{id_param}}}", self._handler(get), methods=["GET"]),
            Route(f"{path}/{{{id_param}}}", self._handler(unregister), methods=["DELETE"]),
        ]

    # -- eval ---------------------------------------------------------------------------------------------

    def _benchmark_call(self, method: str, *, job: bool = False, body: bool = False) -> _Handler:
        async def work(request: Request) -> Any:
            benchmark_id = request.path_params["benchmark_id"]
            owner = self.host.registry.owner("benchmark", benchmark_id)
            kwargs: dict[str, Any] = {"benchmark_id": benchmark_id}
            if job:
                kwargs["job_id"] = request.path_params["job_id"]
            if body:
                kwargs.update(await json_body(request, self.max_body))
            return await self._call(request, owner, method, kwargs)

        return self._handler(work)

    def eval_routes(self, prefix: str) -> list[Route]:
        """run_eval, evaluate_rows, job status, result and cancel, routed by the benchmark's provider."""
        jobs = prefix + "/benchmarks/{benchmark_id}/jobs"
        return [
            Route(jobs, self._benchmark_call("run_eval", body=True), methods=["POST"]),
            Route(jobs + "/{job_id}", self._benchmark_call("job_status", job=True), methods=["GET"]),
            Route(jobs + "/{job_id}", self._benchmark_call("job_cancel", job=True), methods=["DELETE"]),
            Route(jobs + "/{job_id}/result", self._benchmark_call("job_result", job=True), methods=["GET"]),
            Route(
                prefix + "/benchmarks/{benchmark_id}/evaluations",
                self._benchmark_call("evaluate_rows", body=True),
                methods=["POST"],
            ),
        ]

    # -- datasetio ----------------------------------------------------------------------------------------

    def datasetio_routes(self, prefix: str) -> list[Route]:
        """iterrows and append_rows, routed by the dataset's provider."""

        async def iterrows(request: Request) -> Any:
            dataset_id = request.path_params["dataset_id"]
            kwargs: dict[str, Any] = {"dataset_id": dataset_id}
            for name in ("start_index", "limit"):
                value = request.query_params.get(name)
                if value is not None:
                    if not value.lstrip("-").isdigit():
                        raise BadRequestError(f"{name} must be an integer, got {value!r}")
                    kwargs[name] = int(value)
            owner = self.host.registry.owner("dataset", dataset_id)
            return await self._call(request, owner, "iterrows", kwargs)

        async def append_rows(request: Request) -> Any:
            dataset_id = request.path_params["dataset_id"]
            owner = self.host.registry.owner("dataset", dataset_id)
            body = await json_body(request, self.max_body)
            return await self._call(request, owner, "append_rows", {"dataset_id": dataset_id, **body})

        return [
            Route(prefix + "/iterrows/{dataset_id}", self._handler(iterrows), methods=["GET"]),
            Route(prefix + "/append-rows/{dataset_id}", self._handler(append_rows), methods=["POST"]),
        ]

    # -- scoring ------------------------------------------------------------------------------------------

    def scoring_routes(self, prefix: str) -> list[Route]:
        """score and score_batch, routed by their scoring functions' provider (one provider per call)."""

        def owner(functions: Any) -> str:
            if not isinstance(functions, dict) or not functions:
                raise BadRequestError("scoring_functions must be an object of scoring function ids to their params")
            owners = {self.host.registry.owner("scoring_function", fn) for fn in functions}
            if len(owners) > 1:
                raise BadRequestError(f"these scoring functions belong to {len(owners)} providers; score with one")
            return owners.pop()

        def scores(method: str) -> _Handler:
            async def work(request: Request) -> Any:
                body = await json_body(request, self.max_body)
                return await self._call(request, owner(body.get("scoring_functions")), method, body)

            return self._handler(work)

        return [
            Route(prefix + "/score", scores("score"), methods=["POST"]),
            Route(prefix + "/score-batch", scores("score_batch"), methods=["POST"]),
        ]

    # -- safety -------------------------------------------------------------------------------------------

    def safety_routes(self, prefix: str) -> list[Route]:
        """run_shield, routed by its shield's provider; the OpenAI moderations route, by the shield its model
        names (``ResourceTables.moderation_shield``; ``?model=`` in the URL stands for the body's, for
        callers such as OGX's ``moderation_endpoint`` that post only the input)."""

        async def run_shield(request: Request) -> Any:
            body = await json_body(request, self.max_body)
            shield_id = body.get("shield_id")
            if not isinstance(shield_id, str) or not shield_id:
                raise BadRequestError("shield_id is required: one of GET /v1/shields")
            if not isinstance(body.get("messages"), list):
                raise BadRequestError("messages must be a list of messages")
            owner = self.host.registry.owner("shield", shield_id)
            return await self._call(request, owner, "run_shield", body)

        async def moderations(request: Request) -> Any:
            body = await json_body(request, self.max_body)
            text = body.get("input")
            if not isinstance(text, str) and not (isinstance(text, list) and all(isinstance(t, str) for t in text)):
                raise BadRequestError("input must be a string or a list of strings")
            model = body.get("model") or request.query_params.get("model")
            if model is not None and not isinstance(model, str):
                raise BadRequestError("model must be a string: a shield (GET /v1/shields)")
            shield = self.host.registry.moderation_shield(model)
            kwargs = {**body, "model": shield["provider_resource_id"]}
            return await self._call(request, shield["provider_id"], "run_moderation", kwargs)

        return [
            Route(prefix + "/safety/run-shield", self._handler(run_shield), methods=["POST"]),
            Route(prefix + "/moderations", self._handler(moderations), methods=["POST"]),
        ]

    # -- post-training ------------------------------------------------------------------------------------

    def post_training_routes(self, prefix: str) -> list[Route]:
        """Training starts go to the named (or only) post_training provider, which is remembered as the
        job's owner; a job's status, artifacts and cancel go to its owner; listing asks every provider."""

        def start(method: str) -> _Handler:
            async def work(request: Request) -> Any:
                # The defaults Llama Stack's PostTraining protocol declares, which its server filled in and
                # providers (KubeFlow Training's) rely on.
                body = {**_TRAINING_DEFAULTS[method], **await json_body(request, self.max_body)}
                provider_id = body.pop("provider_id", None) or self._only("post_training")
                job_uuid = body.setdefault("job_uuid", f"job-{uuid.uuid4().hex}")
                result = await self._call(request, provider_id, method, body)
                self.host.registry.remember_job(str(job_uuid), "post_training", provider_id)
                return result

            return self._handler(work)

        def job_owner(job_uuid: Any) -> str:
            if not isinstance(job_uuid, str) or not job_uuid:
                raise BadRequestError("job_uuid is required")
            owner = self.host.registry.job_owner(job_uuid)
            if owner is None:
                ids = self.host.registry.providers_of("post_training")
                if len(ids) != 1:
                    raise RoutingError(f"training job {job_uuid!r} not found (not started through this host)")
                owner = ids[0]
            return owner

        def on_job(method: str) -> _Handler:
            async def work(request: Request) -> Any:
                if request.method == "GET":
                    job_uuid = request.query_params.get("job_uuid")
                else:
                    job_uuid = (await json_body(request, self.max_body)).get("job_uuid")
                return await self._call(request, job_owner(job_uuid), method, {"job_uuid": job_uuid})

            return self._handler(work)

        async def jobs(request: Request) -> Any:
            found: list[Any] = []
            for provider_id in self.host.registry.providers_of("post_training"):
                listed = await self._call(request, provider_id, "get_training_jobs", {})
                found.extend(listed.get("data", []) if isinstance(listed, dict) else listed or [])
            return {"data": found}

        return [
            Route(prefix + "/supervised-fine-tune", start("supervised_fine_tune"), methods=["POST"]),
            Route(prefix + "/preference-optimize", start("preference_optimize"), methods=["POST"]),
            Route(prefix + "/jobs", self._handler(jobs), methods=["GET"]),
            Route(prefix + "/job/status", on_job("get_training_job_status"), methods=["GET"]),
            Route(prefix + "/job/artifacts", on_job("get_training_job_artifacts"), methods=["GET"]),
            Route(prefix + "/job/cancel", on_job("cancel_training_job"), methods=["POST"]),
        ]


# The APIs these routes serve, each with the table it owns.
ROUTED_APIS = ("eval", "datasetio", "scoring", "post_training", "safety")


def routes_for(api: str, host: ResourceHost, max_body: int) -> list[Route]:
    """The routes of one API (``eval`` brings the benchmarks table's, ``datasetio`` the datasets', ``scoring``
    the scoring functions', ``safety`` the shields')."""
    routes = ResourceRoutes(host, max_body)
    if api == "eval":
        return [*routes.table_routes("benchmark", "/v1alpha/eval/benchmarks", "benchmark_id"),
                *routes.eval_routes("/v1alpha/eval")]  # fmt: skip
    if api == "datasetio":
        return [*routes.table_routes("dataset", "/v1beta/datasets", "dataset_id"),
                *routes.datasetio_routes("/v1beta/datasetio")]  # fmt: skip
    if api == "scoring":
        return [*routes.table_routes("scoring_function", "/v1/scoring-functions", "scoring_fn_id"),
                *routes.scoring_routes("/v1/scoring")]  # fmt: skip
    if api == "safety":
        return [*routes.table_routes("shield", "/v1/shields", "identifier:path"), *routes.safety_routes("/v1")]
    if api == "post_training":
        return [*routes.post_training_routes("/v1alpha/post-training"),
                *routes.post_training_routes("/v1/post-training")]  # fmt: skip
    raise ValueError(f"no routes for API {api!r}; these are served: {', '.join(ROUTED_APIS)}")


def resource_routes(host: ResourceHost, max_body: int) -> list[Route]:
    """Every route of this module."""
    return [route for api in ROUTED_APIS for route in routes_for(api, host, max_body)]
