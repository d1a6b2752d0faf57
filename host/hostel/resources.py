"""The routing tables hostel keeps itself, as Llama Stack's server does (docs/resources.md).

Benchmarks, datasets, scoring functions and shields are resources a provider owns: the run config may list
them (``benchmarks:``, ``datasets:``, ``scoring_fns:``, ``shields:``, top-level or under
``registered_resources``), and callers register more at run time. Calls that name one
(``run_eval(benchmark_id=...)``, ``iterrows(dataset_id=...)``, ``score(scoring_functions={...})``,
``run_shield(shield_id=...)``) go to the provider that owns it, and a provider that declares ``benchmarks``,
``datasets``, ``scoring_functions`` or ``shields`` among its ``api_dependencies`` reads these tables through
its ``deps``. Registrations and which provider runs which post-training job
persist in a SQLite file under the host's state directory, so a restart of the host loses none; every
worker that starts (restarts and replacements included) is told again of the resources it owns, since a
provider keeps its own registry in memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hostel.config import RunConfig
from hostel.errors import RoutingError
from hostel.transport.callbacks import NamedMethods

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kind:
    """One kind of resource: its table's API, the provider API that owns it, its id and its provider methods."""

    name: str  # the resource's ``type``: "benchmark"
    table_api: str  # the API a provider's deps reach the table by: "benchmarks"
    api: str  # the API of the providers that own them: "eval"
    id_key: str  # "benchmark_id"
    provider_id_key: str  # "provider_benchmark_id": the provider's own name for it
    config_key: str  # the run config's list: "benchmarks"

    @property
    def register(self) -> str:
        """The provider method told of a new one (``register_benchmark``)."""
        return f"register_{self.name}"

    @property
    def unregister(self) -> str:
        """The provider method told it is gone."""
        return f"unregister_{self.name}"


BENCHMARK = Kind("benchmark", "benchmarks", "eval", "benchmark_id", "provider_benchmark_id", "benchmarks")
DATASET = Kind("dataset", "datasets", "datasetio", "dataset_id", "provider_dataset_id", "datasets")
SCORING_FUNCTION = Kind(
    "scoring_function", "scoring_functions", "scoring", "scoring_fn_id", "provider_scoring_fn_id", "scoring_fns"
)
SHIELD = Kind("shield", "shields", "safety", "shield_id", "provider_shield_id", "shields")
KINDS: tuple[Kind, ...] = (BENCHMARK, DATASET, SCORING_FUNCTION, SHIELD)
TABLE_APIS: dict[str, Kind] = {kind.table_api: kind for kind in KINDS}
# The APIs whose calls the tables route (by resource or training job), and whose providers own resources.
OWNING_APIS = frozenset({*(kind.api for kind in KINDS), "post_training"})


class ResourceStore:
    """Registered resources and training jobs in one SQLite file (or in memory when ``path`` is ``None``)."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        # The bridge's host runs on a loop thread of its own while the server's routes read the tables:
        # one connection shared across threads, each statement atomic (SQLite's serialized mode).
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")  # a crash mid-write loses at most that write
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resources (kind TEXT, identifier TEXT, record TEXT, "
            "PRIMARY KEY (kind, identifier))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, api TEXT, provider_id TEXT)")

    def rows(self, kind: str) -> list[dict[str, Any]]:
        """The registered resources of ``kind``, oldest first."""
        cursor = self._db.execute("SELECT record FROM resources WHERE kind = ? ORDER BY rowid", (kind,))
        return [json.loads(record) for (record,) in cursor]

    def get(self, kind: str, identifier: str) -> dict[str, Any] | None:
        """One registered resource, or ``None``."""
        row = self._db.execute(
            "SELECT record FROM resources WHERE kind = ? AND identifier = ?", (kind, identifier)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, record: Mapping[str, Any]) -> None:
        """Register (or replace) one resource."""
        self._db.execute(
            "INSERT OR REPLACE INTO resources VALUES (?, ?, ?)", (kind, record["identifier"], json.dumps(record))
        )

    def delete(self, kind: str, identifier: str) -> None:
        """Forget one resource."""
        self._db.execute("DELETE FROM resources WHERE kind = ? AND identifier = ?", (kind, identifier))

    def job_owner(self, job_id: str) -> str | None:
        """The provider that runs job ``job_id``, if one was started through hostel."""
        row = self._db.execute("SELECT provider_id FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return str(row[0]) if row else None

    def put_job(self, job_id: str, api: str, provider_id: str) -> None:
        """Remember which provider runs a job."""
        self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?)", (job_id, api, provider_id))

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def default_state_dir(config: RunConfig, home: Path) -> Path | None:
    """Where a config's registrations live unless ``hostel.state_dir`` says: one directory per config file."""
    if config.hostel.state_dir is not None:
        return config.base_dir / config.hostel.state_dir
    if config.source is None:
        return None
    digest = hashlib.sha256(str(config.source).encode()).hexdigest()[:12]
    return home / "state" / f"{config.source.stem}-{digest}"


def _config_record(kind: Kind, row: Any) -> dict[str, Any]:
    fields = row.model_dump(exclude_none=True)
    return {kind.id_key: fields.pop(kind.id_key), **fields}


class ResourceTables:
    """The benchmarks, datasets, scoring functions and shields tables: the run config's rows and the registered ones
    (a registered row with a config row's id replaces it), each owned by one provider."""

    def __init__(self, store: ResourceStore) -> None:
        self.store = store
        self._configured: dict[str, dict[str, dict[str, Any]]] = {kind.name: {} for kind in KINDS}
        self._providers: dict[str, list[str]] = {}
        self._default_shield: str | None = None

    def configure(self, config: RunConfig, providers_by_api: Mapping[str, Sequence[str]]) -> None:
        """Take the config's rows and providers (at start and after every reload); rows whose provider is
        missing are ``ConfigError``s already, so every one here resolves."""
        self._providers = {api: list(ids) for api, ids in providers_by_api.items()}
        self._default_shield = config.safety.default_shield_id
        for kind in KINDS:
            rows = getattr(config, kind.config_key)
            records = [self.record(kind, _config_record(kind, row)) for row in rows if self._serves(kind, row)]
            self._configured[kind.name] = {r["identifier"]: r for r in records}

    def _serves(self, kind: Kind, row: Any) -> bool:
        if row.provider_id is None and len(self._providers.get(kind.api, [])) != 1:
            logger.warning(
                "%s %r names no provider_id and there is not exactly one %s provider: it is left out",
                kind.name, getattr(row, kind.id_key), kind.api,
            )  # fmt: skip
            return False
        return True

    def record(self, kind: Kind, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A resource as Llama Stack's type has it (``identifier``, ``provider_id``, ``provider_resource_id``,
        ``type``, and the kind's own fields), from register arguments; ``RoutingError`` if no provider fits."""
        identifier = fields.get(kind.id_key) or f"{kind.name}-{uuid.uuid4().hex}"
        owners = self._providers.get(kind.api, [])
        provider_id = fields.get("provider_id")
        if provider_id is None:
            if len(owners) != 1:
                raise RoutingError(
                    f"{kind.name} {identifier!r}: name its provider_id, one of the {kind.api} providers "
                    f"({', '.join(owners) or 'none configured'})"
                )
            provider_id = owners[0]
        elif provider_id not in owners:
            raise RoutingError(
                f"{kind.name} {identifier!r}: {provider_id!r} is not a {kind.api} provider; "
                f"{kind.api} providers: {', '.join(owners) or 'none'}",
                provider_id=provider_id,
            )
        # Fields left unset are left out, not null: Llama Stack's types give them defaults ({} for metadata).
        extra = {
            k: v
            for k, v in fields.items()
            if k not in (kind.id_key, "provider_id", kind.provider_id_key) and v is not None
        }
        return {
            "identifier": identifier,
            "provider_id": provider_id,
            "provider_resource_id": fields.get(kind.provider_id_key) or identifier,
            "type": kind.name,
            **extra,
        }

    def register(self, kind: Kind, record: Mapping[str, Any]) -> None:
        """Keep a registered resource (it persists)."""
        self.store.put(kind.name, record)

    def unregister(self, kind: Kind, identifier: str) -> None:
        """Forget a resource; one from the run config is gone until the config is read again (a reload, a
        restart), as in Llama Stack, whose config resources are registered again at every start."""
        self.store.delete(kind.name, identifier)
        self._configured[kind.name].pop(identifier, None)

    def route(self, api: str, kwargs: Mapping[str, Any]) -> str | None:
        """The provider that owns what a call of ``api`` with these arguments names: a benchmark, a dataset,
        a scoring function, a shield or a training job; ``None`` when it names none in the tables."""
        for kind in KINDS:
            if kind.api != api:
                continue
            named = kwargs.get(kind.id_key)
            if kind is SCORING_FUNCTION and isinstance(kwargs.get("scoring_functions"), Mapping):
                named = next(iter(kwargs["scoring_functions"]), None)
            record = self.get(kind, named) if isinstance(named, str) else None
            if record is not None:
                return str(record["provider_id"])
        job = kwargs.get("job_uuid")
        if api == "post_training" and isinstance(job, str):
            return self.store.job_owner(job)
        return None

    def get(self, kind: Kind, identifier: str) -> dict[str, Any] | None:
        """One resource, or ``None``."""
        return self.store.get(kind.name, identifier) or self._configured[kind.name].get(identifier)

    def all(self, kind: Kind) -> list[dict[str, Any]]:
        """Every resource of ``kind``: the config's, then the registered ones."""
        registered = self.store.rows(kind.name)
        ids = {r["identifier"] for r in registered}
        return [r for r in self._configured[kind.name].values() if r["identifier"] not in ids] + registered

    def owned_by(self, provider_id: str) -> list[tuple[Kind, dict[str, Any]]]:
        """Every resource ``provider_id`` owns (what a new worker of it is told)."""
        return [(kind, r) for kind in KINDS for r in self.all(kind) if r["provider_id"] == provider_id]

    def require(self, kind: Kind, identifier: str) -> dict[str, Any]:
        """One resource; ``RoutingError`` (404), naming the ones there are, if it is not in the table."""
        record = self.get(kind, identifier)
        if record is None:
            known = ", ".join(r["identifier"] for r in self.all(kind)) or "none"
            raise RoutingError(
                f"{kind.name} {identifier!r} not found; registered {kind.table_api}: {known}. "
                f"Register it first (POST it, or list it under {kind.config_key}: in the run config)"
            )
        return record

    def owner(self, kind: Kind, identifier: str) -> str:
        """The provider that owns ``identifier``; ``RoutingError`` (404) if it is not in the table."""
        return str(self.require(kind, identifier)["provider_id"])

    def moderation_shield(self, model: str | None) -> dict[str, Any]:
        """The shield a moderation request uses, as Llama Stack's safety router picks it: the one whose
        ``provider_resource_id`` (or, here also, whose id) is ``model``; with no model, ``safety.default_shield_id``
        or else the only shield. ``RoutingError`` (404) when none fits, naming the ones there are."""
        shields = self.all(SHIELD)
        known = ", ".join(s["identifier"] for s in shields) or "none registered"
        if model is None:
            if self._default_shield is None and len(shields) == 1:
                return shields[0]
            if self._default_shield is None:
                raise RoutingError(
                    f"the request names no moderation model and the run config sets no safety.default_shield_id; "
                    f"name one of the shields as model: {known}"
                )
            return self.require(SHIELD, self._default_shield)
        matches = [s for s in shields if s["identifier"] == model] or [
            s for s in shields if s["provider_resource_id"] == model
        ]
        if len(matches) > 1:
            ids = ", ".join(s["identifier"] for s in matches)
            raise RoutingError(f"moderation model {model!r} is the provider's id of several shields ({ids}); name one")
        if not matches:
            raise RoutingError(f"no shield is moderation model {model!r}; shields: {known}. Register it first")
        return matches[0]


class Registry(Protocol):
    """The host's resource registry as its users see it: the host's own tables (``TableApi``), the gateway's
    routes, the bridge (``hostel.registry.HostRegistry``, or the bridge's view of one on another loop)."""

    async def register(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Register a resource with the provider that owns it, and keep it."""
        ...

    async def unregister(self, kind: str, identifier: str) -> None:
        """Unregister a resource."""
        ...

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """Every resource of ``kind``."""
        ...

    def resource(self, kind: str, identifier: str) -> dict[str, Any]:
        """One resource; ``RoutingError`` if there is none."""
        ...

    def owner(self, kind: str, identifier: str) -> str:
        """The provider owning a resource (``RoutingError`` if none)."""
        ...

    def providers_of(self, api: str) -> list[str]:
        """The providers serving ``api``, in start order."""
        ...

    def job_owner(self, job_id: str) -> str | None:
        """The provider running a job started through the host, if known."""
        ...

    def moderation_shield(self, model: str | None) -> dict[str, Any]:
        """The shield a moderation request naming ``model`` (or none) uses."""
        ...

    def remember_job(self, job_id: str, api: str, provider_id: str) -> None:
        """Keep which provider runs a job."""
        ...


class TableApi(NamedMethods):
    """``host.api("benchmarks")`` when no provider serves that API: the host's own table, answering what
    Llama Stack's routing tables answer a provider that depends on them (``list_benchmarks``,
    ``get_benchmark``, ``register_benchmark``, ``unregister_benchmark``; the same for datasets, scoring
    functions and shields). Arguments may come as keywords, as one request object, or as the id alone."""

    def __init__(self, registry: Registry, kind: Kind) -> None:
        self._registry = registry
        self.kind = kind

    async def invoke(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Answer one table method."""
        kind = self.kind
        fields = dict(kwargs)
        if len(args) == 1 and isinstance(args[0], Mapping):
            fields = {**args[0], **fields}
        elif len(args) == 1 and isinstance(args[0], str):
            fields[kind.id_key] = args[0]
        if method == f"list_{kind.table_api}":
            return {"data": self._registry.resources(kind.name)}
        if method == kind.register:
            return await self._registry.register(kind.name, **fields)
        # Newer Llama Stacks ask with a request object: ``get_shield(GetShieldRequest(identifier=...))``.
        identifier = fields.get(kind.id_key, fields.get("identifier"))
        if not isinstance(identifier, str):
            raise RoutingError(f"{kind.table_api}.{method}() needs {kind.id_key}")
        if method == f"get_{kind.name}":
            return self._registry.resource(kind.name, identifier)
        if method == kind.unregister:
            await self._registry.unregister(kind.name, identifier)
            return None
        known = f"list_{kind.table_api}, get_{kind.name}, {kind.register}, {kind.unregister}"
        raise RoutingError(f"the {kind.table_api} table has no method {method!r}; it has: {known}")
