"""The run config: loading, ``${env.…}`` substitution and validation. No env or worker knowledge here.

Compatible with Llama Stack run configs old and new: the models table may be top-level ``models:`` or
``registered_resources.models``; unknown top-level keys are ignored with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hostel.config.envsubst import substitute
from hostel.config.problems import did_you_mean, pydantic_problems
from hostel.config.schema import (
    PROVIDER_KEYS,
    BenchmarkEntry,
    DatasetEntry,
    HostelSettings,
    ModelEntry,
    ProviderConfig,
    ProviderEntry,
    RunConfig,
    SafetySettings,
    ScoringFnEntry,
    ShieldEntry,
)
from hostel.config.server import ServerSettings
from hostel.errors import ConfigError, Problem
from hostel_sdk.api import API_NAMES

logger = logging.getLogger(__name__)

_Row = TypeVar("_Row", ModelEntry, ShieldEntry, BenchmarkEntry, DatasetEntry, ScoringFnEntry)

_KNOWN_TOP = {
    "version", "image_name", "distro_name", "apis", "providers", "models", "registered_resources", "server",
    "hostel", "external_providers_dir", "storage", "metadata_store", "inference_store", "conversations_store",
    "logging", "shields", "vector_dbs", "datasets", "scoring_fns", "benchmarks", "tool_groups", "telemetry",
    "container_image", "external_apis_dir", "vector_stores", "safety", "auth",
}  # fmt: skip


def load_run_config(
    source: str | os.PathLike[str] | Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> RunConfig:
    """Read, substitute and validate a run config (a YAML path or a dict); ``ConfigError`` lists every problem."""
    config, problems = read_run_config(source, environ=environ)
    if problems:
        raise ConfigError(problems)
    return config


def read_run_config(
    source: str | os.PathLike[str] | Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> tuple[RunConfig, list[Problem]]:
    """Like ``load_run_config`` but returns the valid parts with the problems, so callers can report more.

    An unreadable file still raises ``ConfigError`` at once: there is nothing else to check.
    """
    environ = os.environ if environ is None else environ
    raw, path = _read(source)
    base_dir = path.parent if path is not None else Path.cwd()
    label = str(path) if path else "<run config>"
    if not isinstance(raw, dict):
        raise ConfigError([Problem(label, "", f"must be a YAML mapping, got {type(raw).__name__}")])

    problems: list[Problem] = []
    raw = substitute(
        raw,
        environ,
        lambda key, name: problems.append(
            Problem(label, key, f"environment variable {name} is not set; set it or write ${{env.{name}:=default}}")
        ),
    )
    for key in raw:
        if key not in _KNOWN_TOP:
            logger.warning("%s: ignoring unknown top-level key %r", label, key)

    providers = _providers(raw.get("providers"), label, problems)
    models = _resources(raw, "models", ModelEntry, label, problems)
    shields = _resources(raw, "shields", ShieldEntry, label, problems)
    benchmarks = _resources(raw, "benchmarks", BenchmarkEntry, label, problems)
    datasets = _resources(raw, "datasets", DatasetEntry, label, problems)
    scoring_fns = _resources(raw, "scoring_fns", ScoringFnEntry, label, problems)
    server = _section(ServerSettings, raw.get("server"), label, "server", problems) or ServerSettings()
    settings = _section(HostelSettings, raw.get("hostel"), label, "hostel", problems) or HostelSettings()
    safety = _section(SafetySettings, raw.get("safety"), label, "safety", problems) or SafetySettings()

    ext_dir: Path | None = None
    if raw.get("external_providers_dir"):
        ext_dir = (base_dir / os.path.expanduser(str(raw["external_providers_dir"]))).resolve()

    tables: dict[str, Sequence[Any]] = {"models": models, "benchmarks": benchmarks, "datasets": datasets,
                                        "scoring_fns": scoring_fns, "shields": shields}  # fmt: skip
    _check_ids(raw, label, [(p.provider_id, p.api) for p in providers], tables, problems)
    return RunConfig(
        providers=tuple(providers),
        models=tuple(models),
        shields=tuple(shields),
        server=server,
        hostel=settings,
        external_providers_dir=ext_dir,
        source=path,
        base_dir=base_dir,
        raw=raw,
        benchmarks=tuple(benchmarks),
        datasets=tuple(datasets),
        scoring_fns=tuple(scoring_fns),
        safety=safety,
    ), problems


def _read(source: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, Path | None]:
    """The run config's raw YAML and its path (``None`` for a mapping); ``ConfigError`` if it cannot be read."""
    if isinstance(source, Mapping):
        return dict(source), None
    path = Path(source).resolve()
    try:
        with path.open() as stream:  # a stream, so that a YAML error names the file
            return yaml.safe_load(stream), path
    except FileNotFoundError:
        raise ConfigError([Problem(str(path), "", "file not found; pass the path of a run config YAML")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(str(path), "", f"not valid YAML: {exc}")]) from None


# The API of the providers that own each resource table's rows (the models table routes any API).
_OWNING_API = {"benchmarks": "eval", "datasets": "datasetio", "scoring_fns": "scoring", "shields": "safety"}


def _check_ids(
    raw: Mapping[str, Any], label: str, providers: Sequence[tuple[str, str]], tables: Mapping[str, Sequence[Any]],
    problems: list[Problem],
) -> None:  # fmt: skip
    """Provider ids are unique, and every resource row's ``provider_id`` names a provider, of the API that owns
    such rows."""
    ids = [pid for pid, _ in providers]
    apis = dict(providers)
    for pid in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(Problem(label, "providers", f"provider_id {pid!r} is used more than once; ids must be unique"))
    for name, rows in tables.items():
        owning = _OWNING_API.get(name)
        for i, row in enumerate(rows):
            key = f"{_resources_key(raw, name)}[{i}].provider_id"
            if row.provider_id is not None and row.provider_id not in apis:
                known = ", ".join(ids) or "none"
                problems.append(Problem(label, key, f"no provider {row.provider_id!r}; known: {known}"))
            elif row.provider_id is not None and owning is not None and apis[row.provider_id] != owning:
                owners = ", ".join(pid for pid, api in apis.items() if api == owning) or "none configured"
                problems.append(
                    Problem(
                        label, key,
                        f"{row.provider_id!r} is a {apis[row.provider_id]} provider; {name} belong to {owning} "
                        f"providers ({owners})",
                    )
                )  # fmt: skip


def _section(model: type[BaseModel], value: Any, label: str, key: str, problems: list[Problem]) -> Any:
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems.extend(pydantic_problems(label, key, exc, model))
        return None


def _providers(value: Any, label: str, problems: list[Problem]) -> list[ProviderConfig]:
    if value is None:
        return []
    if not isinstance(value, dict):
        problems.append(Problem(label, "providers", "must be a mapping of API name to a list of providers"))
        return []
    result = []
    for api, entries in value.items():
        if api not in API_NAMES:
            problems.append(
                Problem(label, f"providers.{api}", f"unknown API {api!r}; known APIs: {', '.join(API_NAMES)}")
            )
            continue
        if not isinstance(entries, list):
            problems.append(Problem(label, f"providers.{api}", "must be a list of provider entries"))
            continue
        for i, item in enumerate(entries):
            named = isinstance(item, dict) and isinstance(item.get("provider_id"), str) and item["provider_id"]
            key = f"providers.{api}[{item['provider_id'] if named else i}]"  # the provider's id, as plan errors say
            if isinstance(item, dict) and "provider_id" in item and not item["provider_id"]:
                # ${env.X:+id} that came out empty: the provider is disabled, as in Llama Stack
                logger.info("%s: %s is disabled (empty provider_id)", label, key)
                continue
            try:
                entry = ProviderEntry.model_validate(item)
            except ValidationError as exc:
                problems.extend(pydantic_problems(label, key, exc, ProviderEntry))
                continue
            unknown = sorted(set(item) - PROVIDER_KEYS)
            for extra in unknown:
                problems.append(
                    Problem(
                        label,
                        f"{key}.{extra}",
                        f"unknown key {extra!r} in a provider entry{did_you_mean(extra, PROVIDER_KEYS)}; "
                        f"a provider entry takes: {', '.join(sorted(PROVIDER_KEYS))}",
                    )
                )
            if not unknown:
                result.append(ProviderConfig(api=api, entry=entry))
    return result


def _resources_key(raw: Mapping[str, Any], name: str) -> str:
    """Where a table of resources is: top-level (older run configs) or under ``registered_resources``."""
    if raw.get(name) is None and isinstance(raw.get("registered_resources"), dict):
        return f"registered_resources.{name}"
    return name


def _resources(raw: Mapping[str, Any], name: str, model: type[_Row], label: str, problems: list[Problem]) -> list[_Row]:
    """A table of resources: top-level (older run configs) or under ``registered_resources`` (current)."""
    key = _resources_key(raw, name)
    rows = raw.get(name) if key == name else raw["registered_resources"].get(name)
    if rows is None:
        return []
    if not isinstance(rows, list):
        problems.append(Problem(label, key, f"must be a list of {name} entries"))
        return []
    result = []
    for i, row in enumerate(rows):
        try:
            result.append(model.model_validate(row))
        except ValidationError as exc:
            problems.extend(pydantic_problems(label, f"{key}[{i}]", exc))
    return result
