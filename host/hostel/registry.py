"""The host's resource registry: the benchmarks, datasets, scoring functions and shields tables
(docs/resources.md).

Each resource is owned by one provider, told of it when it is registered (its ``register_benchmark`` ...;
if it refuses, nothing is kept), when it is unregistered, and at every start of one of its workers (a
provider keeps its registry in memory). The tables persist in SQLite under the host's state directory,
opened on first use; a host that does not hold that directory (another host does) keeps them in memory.
Which provider runs a post-training job is kept there too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hostel.config.plan import Plan, ProviderPlan
from hostel.errors import MethodNotFoundError, RoutingError
from hostel.resources import KINDS, OWNING_APIS, Kind, ResourceStore, ResourceTables
from hostel.transport.channel import Channel

logger = logging.getLogger(__name__)

# Calls ``method`` of a provider with one argument (how the registry tells a provider of its resources).
Tell = Callable[[str, str, Any], Awaitable[Any]]


class HostRegistry:
    """The registry of one host (``hostel.resources.Registry``); see the module's docstring."""

    def __init__(self, plan: Plan, tell: Tell, state: Path | None) -> None:
        """``plan``: what the host runs (``configure`` gives it the next one); ``tell``: calls a provider;
        ``state``: the directory the tables persist in (``None``: in memory)."""
        self._plan = plan
        self._tell = tell
        self._state = state
        self._tables: ResourceTables | None = None

    @property
    def opened(self) -> bool:
        """Whether the tables were opened (their state is then where they were opened)."""
        return self._tables is not None

    def keep_in(self, state: Path | None) -> None:
        """Persist the tables under ``state`` (``None``: in memory only), if they are not open yet."""
        if self._tables is None:
            self._state = state

    def configure(self, plan: Plan) -> None:
        """The host now runs ``plan`` (a reload): the resources its run config lists, and who serves what."""
        self._plan = plan
        if self._tables is not None:
            self._tables.configure(plan.config, self._by_api())

    @property
    def tables(self) -> ResourceTables:
        """The resource tables, opened on first use."""
        if self._tables is None:
            self._tables = ResourceTables(ResourceStore(self._state / "registry.sqlite3" if self._state else None))
            self._tables.configure(self._plan.config, self._by_api())
        return self._tables

    def _by_api(self) -> dict[str, list[str]]:
        by_api: dict[str, list[str]] = {}
        for plan in self._plan.providers:
            by_api.setdefault(plan.api, []).append(plan.provider_id)
        return by_api

    def kind(self, kind: str) -> Kind:
        """The resource kind named ``kind`` (``benchmark``, or its table's API, ``benchmarks``)."""
        for found in KINDS:
            if kind in (found.name, found.table_api):
                return found
        raise RoutingError(f"no resource kind {kind!r}; kinds: {', '.join(k.name for k in KINDS)}")

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """Every ``benchmark``, ``dataset``, ``scoring_function`` or ``shield`` in the tables, as Llama Stack's
        types have them."""
        return self.tables.all(self.kind(kind))

    def resource(self, kind: str, identifier: str) -> dict[str, Any]:
        """One resource; ``RoutingError`` (HTTP 404) if the table has no such id."""
        return self.tables.require(self.kind(kind), identifier)

    def owner(self, kind: str, identifier: str) -> str:
        """The id of the provider that owns a resource; ``RoutingError`` (HTTP 404) if the table has no such id."""
        return self.tables.owner(self.kind(kind), identifier)

    def providers_of(self, api: str) -> list[str]:
        """The ids of the providers that serve ``api``, in start order."""
        return self._by_api().get(api, [])

    def moderation_shield(self, model: str | None) -> dict[str, Any]:
        """The shield a moderation request naming ``model`` uses (``ResourceTables.moderation_shield``)."""
        return self.tables.moderation_shield(model)

    def job_owner(self, job_id: str) -> str | None:
        """The provider running a (post-training) job started through this host, if known."""
        return self.tables.store.job_owner(job_id)

    def remember_job(self, job_id: str, api: str, provider_id: str) -> None:
        """Keep which provider runs a job (across restarts), so later calls about it reach that provider."""
        self.tables.store.put_job(job_id, api, provider_id)

    async def register(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Register a resource (``benchmark_id=..., dataset_id=..., scoring_functions=[...]`` for a benchmark)
        with the provider that owns it (``provider_id``, or the API's only provider) and keep it across
        restarts. The provider is told first (its ``register_benchmark``...); if it refuses, nothing is kept."""
        found = self.kind(kind)
        record = self.tables.record(found, fields)
        await self._tell_owner(record["provider_id"], found.register, record)
        self.tables.register(found, record)
        logger.info("registered %s %r with provider %s", found.name, record["identifier"], record["provider_id"])
        return record

    async def unregister(self, kind: str, identifier: str) -> None:
        """Unregister a resource: its provider is told, then it is forgotten."""
        found = self.kind(kind)
        owner = self.tables.owner(found, identifier)
        await self._tell_owner(owner, found.unregister, identifier)
        self.tables.unregister(found, identifier)

    async def _tell_owner(self, provider_id: str, method: str, value: Any) -> None:
        with contextlib.suppress(MethodNotFoundError):  # a provider with no registry of its own needs no telling
            await self._tell(provider_id, method, value)

    async def prime(self, plan: ProviderPlan, channel: Channel, timeout: float) -> None:
        """Tell a new worker of the resources its provider owns (its registry lives in the worker's memory)."""
        if plan.api not in OWNING_APIS:
            return  # owns none: no state file to open
        for kind, record in self.tables.owned_by(plan.provider_id):
            try:
                await channel.call(kind.register, (record,), {}, timeout=timeout, provider_data=None)
            except MethodNotFoundError:
                return
            except Exception as exc:  # noqa: BLE001 - one stale registration must not keep the provider down
                logger.warning("provider %s refused %s %r: %s", plan.provider_id, kind.name, record["identifier"], exc)
