"""The APIs OGX removed — eval, datasetio, scoring, post_training, safety — offered to an OGX 1.x server as external
APIs (its ``external_apis_dir``), served by hostel (docs/llama-stack-bridge.md, docs/resources.md).

One YAML file per API in the server's ``external_apis_dir`` names this module::

    name: eval
    module: hostel.bridge.removed
    protocol: Eval

and one provider entry per API in the server's run config names a hostel run config::

    providers:
      eval:
      - provider_id: hostel
        provider_type: remote::hostel-eval
        config: {run_config: ./hostel.yaml}

The server then asks this module for its providers (``available_providers``), builds the entry with
``get_adapter_impl`` and mounts ``create_router``'s routes: the same routes ``hostel run`` serves for these
APIs, with the benchmarks, datasets, scoring functions and shields tables kept by hostel (``safety`` brings
``/v1/shields``, ``/v1/safety/run-shield`` and ``/v1/moderations``, which OGX's own Responses provider can
name as its ``moderation_endpoint``). Every entry naming the same hostel run config shares one ``Host``,
started on the first and stopped with the last; its providers run in their own venvs and processes, and may
use the server's own APIs (inference, files, ...) through ``deps``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, Field

from hostel.bridge import _shared as _shared_hosts
from hostel.bridge._deps import ServerApis
from hostel.bridge._hub_http import HubRoutes
from hostel.bridge._loop import LoopThread, iterate_on, run_on
from hostel.bridge._server import current
from hostel.bridge._shared import SharedHost
from hostel.config.plan import Plan, load_plan
from hostel.gateway.resources import ROUTED_APIS, routes_for
from hostel.host import Host
from hostel.supervise.status import ProviderStatus

logger = logging.getLogger(__name__)

# The server's own APIs the hosted providers may call through their deps, when the server has them.
_SERVER_DEPENDENCIES = ("inference", "files", "vector_io", "tool_runtime", "batches", "models")


class Eval(Protocol):
    """The eval API's protocol, as OGX's external API mechanism names one (its routes are this module's)."""


class DatasetIO(Protocol):
    """The datasetio API's protocol."""


class Scoring(Protocol):
    """The scoring API's protocol."""


class PostTraining(Protocol):
    """The post_training API's protocol."""


class Safety(Protocol):
    """The safety API's protocol (with the shields table)."""


class RemovedApiConfig(BaseModel):
    """A provider entry's ``config``: the hostel run config whose providers serve the API."""

    api: ClassVar[str] = ""
    run_config: str = Field(description="a hostel run config (absolute, or relative to the server's directory)")
    home: str | None = Field(None, description="hostel's env cache (default: $HOSTEL_HOME or ~/.cache/hostel)")
    shared_host: bool | None = Field(
        None,
        description="whether the processes of a multi-process server share one host of the run config, its tables "
        "and workers (default: when the server runs several; false: one per server process)",
    )


class EvalConfig(RemovedApiConfig):
    """``remote::hostel-eval``."""

    api: ClassVar[str] = "eval"


class DatasetIOConfig(RemovedApiConfig):
    """``remote::hostel-datasetio``."""

    api: ClassVar[str] = "datasetio"


class ScoringConfig(RemovedApiConfig):
    """``remote::hostel-scoring``."""

    api: ClassVar[str] = "scoring"


class PostTrainingConfig(RemovedApiConfig):
    """``remote::hostel-post_training``."""

    api: ClassVar[str] = "post_training"


class SafetyConfig(RemovedApiConfig):
    """``remote::hostel-safety``."""

    api: ClassVar[str] = "safety"


_CONFIGS: dict[str, type[RemovedApiConfig]] = {
    c.api: c for c in (EvalConfig, DatasetIOConfig, ScoringConfig, PostTrainingConfig, SafetyConfig)
}


def available_providers() -> list[Any]:
    """One ``RemoteProviderSpec`` per removed API the server declared in its ``external_apis_dir``."""
    server = current()
    optional = []
    for api in _SERVER_DEPENDENCIES:
        try:
            optional.append(server.api_enum(api))
        except ValueError:
            continue
    specs = []
    for api in ROUTED_APIS:
        try:
            member = server.api_enum(api)
        except ValueError:
            continue  # not declared by this server
        specs.append(
            server.api_package.RemoteProviderSpec(
                api=member,
                provider_type=f"remote::hostel-{api}",
                adapter_type=f"hostel-{api}",
                module=__name__,
                config_class=f"{__name__}.{_CONFIGS[api].__name__}",
                pip_packages=[],
                optional_api_dependencies=optional,
                description=f"The {api} API, served by hostel from the providers of a hostel run config.",
            )
        )
    return specs


class HostOnLoop:
    """A ``Host`` running on its own loop thread, seen from the server's loop: awaited methods cross over,
    streams are read across, the rest is called as is (the tables are safe to read from any thread)."""

    def __init__(self, host: Host, thread: LoopThread) -> None:
        self.host = host
        self.loop = thread.loop  # the host's
        self.serving_loop: asyncio.AbstractEventLoop | None = None  # the hosted providers' deps calls go there

    async def call(
        self, provider_id: str, method: str, args: Sequence[Any], kwargs: dict[str, Any], *,
        timeout: float | None = None, provider_data: Any = None,
    ) -> Any:  # fmt: skip
        """``Host.call`` on the host's loop."""
        self.serving_loop = asyncio.get_running_loop()
        result = await run_on(
            self.loop,
            lambda: self.host.call(provider_id, method, args, kwargs, timeout=timeout, provider_data=provider_data),
        )
        return iterate_on(self.loop, result) if hasattr(result, "__aiter__") else result

    @property
    def registry(self) -> RegistryOnLoop:
        """The host's registry, seen from the server's loop."""
        return RegistryOnLoop(self)


class RegistryOnLoop:
    """A host's registry seen from the server's loop: registering crosses over to the host's loop (where the
    owning provider is told); the tables are read as they are (safe from any thread)."""

    def __init__(self, view: HostOnLoop) -> None:
        self._view = view
        self._registry = view.host.registry

    async def register(self, kind: str, **fields: Any) -> dict[str, Any]:
        """``HostRegistry.register`` on the host's loop."""
        self._view.serving_loop = asyncio.get_running_loop()
        return await run_on(self._view.loop, lambda: self._registry.register(kind, **fields))

    async def unregister(self, kind: str, identifier: str) -> None:
        """``HostRegistry.unregister`` on the host's loop."""
        await run_on(self._view.loop, lambda: self._registry.unregister(kind, identifier))

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """``HostRegistry.resources``."""
        return self._registry.resources(kind)

    def resource(self, kind: str, identifier: str) -> dict[str, Any]:
        """``HostRegistry.resource``."""
        return self._registry.resource(kind, identifier)

    def owner(self, kind: str, identifier: str) -> str:
        """``HostRegistry.owner``."""
        return self._registry.owner(kind, identifier)

    def providers_of(self, api: str) -> list[str]:
        """``HostRegistry.providers_of``."""
        return self._registry.providers_of(api)

    def moderation_shield(self, model: str | None) -> dict[str, Any]:
        """``HostRegistry.moderation_shield``."""
        return self._registry.moderation_shield(model)

    def job_owner(self, job_id: str) -> str | None:
        """``HostRegistry.job_owner``."""
        return self._registry.job_owner(job_id)

    def remember_job(self, job_id: str, api: str, provider_id: str) -> None:
        """``HostRegistry.remember_job``."""
        self._registry.remember_job(job_id, api, provider_id)


class _Shared:
    """One started host for every entry that names the same run config (``path``): in this process (``view`` on
    its ``thread``), or the hub this server's processes share (``hub``, reached through ``routes``)."""

    def __init__(
        self,
        path: Path,
        max_body: int,
        view: HostOnLoop | None = None,
        thread: LoopThread | None = None,
        hub: tuple[SharedHost, HubRoutes] | None = None,
    ) -> None:
        self.path = path
        self.max_body = max_body
        self.view = view
        self.thread = thread
        self.hub = hub
        self.users = 0

    def status(self) -> list[ProviderStatus]:
        """Every provider's status."""
        return self.hub[0].status() if self.hub is not None else self.view.host.status() if self.view else []

    async def stop(self) -> None:
        """Stop the host, or detach from the hub."""
        if self.hub is not None:
            await self.hub[1].close()
            await self.hub[0].stop()
        if self.thread is not None and self.view is not None and not self.thread.loop.is_closed():
            await self.thread.run(self.view.host.stop)
            self.thread.close()


_SHARED: dict[Path, _Shared] = {}


class RemovedApi:
    """What the server holds for one removed API: the shared host, and the loop it serves requests from."""

    def __init__(self, api: str, shared: _Shared, max_body: int) -> None:
        self.api = api
        self.view = shared.view
        self.hub_routes = shared.hub[1] if shared.hub is not None else None
        self.max_body = max_body
        self._shared = shared

    async def initialize(self) -> None:
        """Nothing to do: the factory started the host."""

    async def shutdown(self) -> None:
        """Stop the host when the last API using it shuts down."""
        shared = self._shared
        shared.users -= 1
        if shared.users == 0:
            _SHARED.pop(shared.path, None)
            await shared.stop()

    async def health(self) -> dict[str, Any]:
        """OK when every hosted provider serves."""
        states = {s.provider_id: s.state for s in self._shared.status()}
        bad = {pid: state for pid, state in states.items() if state not in ("ready", "idle", "replacing")}
        return {"status": "Error", "message": f"providers not serving: {bad}"} if bad else {"status": "OK"}


async def get_adapter_impl(config: RemovedApiConfig, deps: dict[Any, Any]) -> RemovedApi:
    """Start (or join) the host of ``config.run_config`` and return the server's object for ``config.api``. In a
    server with several processes, they share one (``hostel.bridge.hub``) unless ``shared_host: false``."""
    path = Path(config.run_config).expanduser().resolve()
    shared = _SHARED.get(path)
    if shared is None:
        views: list[HostOnLoop] = []
        server = current()
        hubbed, key_prefix = _shared_hosts.sharing(config.shared_host)
        external = ServerApis(
            deps,
            lambda: views[0] if views else None,
            server.provider_data_var(),
            asyncio.get_running_loop(),
            key_prefix=key_prefix,
        )
        plan = load_plan(path, external_apis=external.apis)
        if hubbed:
            shared = _SHARED[path] = await _join_hub(path, config, plan, external)
        else:
            shared = _SHARED[path] = await _start_here(path, config, plan, external)
            assert shared.view is not None
            views.append(shared.view)
    shared.users += 1
    return RemovedApi(config.api, shared, shared.max_body)


async def _start_here(path: Path, config: RemovedApiConfig, plan: Plan, external: ServerApis) -> _Shared:
    thread = LoopThread(f"hostel-{path.stem}")

    async def make_host() -> Host:
        return Host(plan, home=Path(config.home) if config.home else None, external=external)

    host = await thread.run(make_host)
    logger.info("hostel: starting the providers of %s for the %s API (%s)", path, config.api, current().name)
    try:
        await thread.run(host.start)
    except BaseException:
        await thread.run(host.stop)
        thread.close()
        raise
    return _Shared(path, plan.settings.max_message_mb * 2**20, view=HostOnLoop(host, thread), thread=thread)


async def _join_hub(path: Path, config: RemovedApiConfig, plan: Plan, external: ServerApis) -> _Shared:
    logger.info("hostel: the providers of %s serve the %s API, shared by the server's processes", path, config.api)
    max_body = plan.settings.max_message_mb * 2**20
    request = _shared_hosts.HubRequest(
        api="", provider_id=path.name, run_config=str(path), home=config.home, policy=[], server_apis=external,
        max_message_bytes=max_body, methods=[], key=_shared_hosts.server_key(), http=True,
    )  # fmt: skip
    hub = await _shared_hosts.attach(request)
    return _Shared(path, max_body, hub=(hub, HubRoutes(hub)))


def create_router(impl: RemovedApi) -> Any:
    """The server's router for ``impl``'s API: the routes ``hostel run`` serves for it."""
    fastapi = importlib.import_module("fastapi")  # the server's; hostel does not depend on it
    router = fastapi.APIRouter()
    if impl.hub_routes is not None:
        router.routes.extend(impl.hub_routes.routes(impl.api))
    else:
        assert impl.view is not None
        router.routes.extend(routes_for(impl.api, impl.view, impl.max_body))
    return router
