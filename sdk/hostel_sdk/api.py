"""The Llama Stack (and OGX) API names hostel knows, as a ``str`` enum usable without Llama Stack installed."""

from __future__ import annotations

from enum import Enum


class Api(str, Enum):  # noqa: UP042 - StrEnum needs 3.11; this package supports 3.10
    """A Llama Stack API. Members compare equal to their names, so ``deps["inference"]`` works."""

    providers = "providers"
    inference = "inference"
    safety = "safety"
    agents = "agents"
    batches = "batches"
    vector_io = "vector_io"
    datasetio = "datasetio"
    scoring = "scoring"
    eval = "eval"
    post_training = "post_training"
    tool_runtime = "tool_runtime"
    telemetry = "telemetry"
    models = "models"
    shields = "shields"
    vector_dbs = "vector_dbs"
    datasets = "datasets"
    scoring_functions = "scoring_functions"
    benchmarks = "benchmarks"
    tool_groups = "tool_groups"
    files = "files"
    prompts = "prompts"
    conversations = "conversations"
    inspect = "inspect"
    connectors = "connectors"
    file_processors = "file_processors"
    # OGX 1.x (agents became responses)
    responses = "responses"
    messages = "messages"
    interactions = "interactions"
    skills = "skills"
    container_runtime = "container_runtime"
    containers = "containers"
    vector_stores = "vector_stores"
    admin = "admin"

    def __str__(self) -> str:
        return self.value

    # str-enum members hash like their value, so a dict keyed by members answers plain names.
    __hash__ = str.__hash__


API_NAMES: tuple[str, ...] = tuple(a.value for a in Api)
