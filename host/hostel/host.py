"""``Host``: the Python front door. Loads a run config, builds envs, starts workers, forwards calls."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from hostel import _telemetry
from hostel._stale import sweep_socket_dirs
from hostel._statelock import StateClaim, claim_state
from hostel._usage import Usage, process_usage
from hostel.config import ModelEntry, RunConfig
from hostel.config.envfile import environ_with
from hostel.config.plan import Plan, ProviderPlan, load_plan
from hostel.envs import Env, EnvManager
from hostel.envs.lock import lock_path
from hostel.errors import ConfigError, Problem, ProviderUnavailableError, RoutingError
from hostel.proxy import ProviderProxy
from hostel.registry import HostRegistry
from hostel.resources import (
    OWNING_APIS,
    SHIELD,
    TABLE_APIS,
    TableApi,
    default_state_dir,
)
from hostel.router import ApiRouter
from hostel.supervise.context import SupervisorContext
from hostel.supervise.provider import Provider
from hostel.supervise.reload import ReloadReport, apply_reload
from hostel.supervise.status import ProviderStatus
from hostel.supervise.supervisor import Supervisor
from hostel.transport.callbacks import ApiHandle, ApiSource, CallbackServer
from hostel.transport.channel import Channel

logger = logging.getLogger(__name__)


class CallObserver(Protocol):
    """Watches calls made through a ``Host`` (for metrics). Must not raise or block."""

    def started(self, provider_id: str, method: str) -> None:
        """A call is about to be forwarded."""

    def finished(self, provider_id: str, method: str, seconds: float, error: BaseException | None) -> None:
        """The call returned (a stream: its first reply), or failed with ``error``."""


class ExternalApis(ApiSource, Protocol):
    """APIs served outside the host's own providers, which they may depend on (the Llama Stack bridge
    serves a bridged provider's ``deps`` from the server's own routers this way)."""

    apis: frozenset[str]


def _model_fields(model: ModelEntry) -> dict[str, Any]:
    return {
        "identifier": model.model_id,
        "provider_id": model.provider_id,
        "provider_resource_id": model.provider_model_id or model.model_id,
        "model_type": model.model_type or "llm",
        "metadata": {},
        "type": "model",
    }


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite, positive number of seconds or None, got {timeout!r}")


class Host:
    """Runs each provider of a run config in its own venv and process.

    ::

        async with Host.from_config("run.yaml") as host:
            reply = await host.provider("ollama").chat_completion(model_id="m", messages=[...])
    """

    def __init__(
        self,
        plan: Plan,
        *,
        home: Path | None = None,
        locked: bool = False,
        log_level: str | None = None,
        external: ExternalApis | None = None,
        env_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``locked``: build envs from the ``hostel.lock`` beside the config, refusing any that changed.
        ``external``: serves the APIs in ``plan.external_apis``. ``env_file`` and ``environ`` (default: the
        process's environment) are what ``reload()`` reads the config with again."""
        self.plan = plan
        self.external = external
        self._source: str | os.PathLike[str] | Mapping[str, Any] | None = plan.config.source
        self._env_file = env_file
        self._environ = environ
        self._reloading = asyncio.Lock()
        self.envs = EnvManager(
            home,
            installer=plan.settings.installer,
            build_timeout_s=plan.settings.build_timeout_s,
            lock=lock_path(plan.config) if locked else None,
            pass_env=plan.settings.pass_env,
        )
        self._log_level = log_level or logging.getLevelName(logging.getLogger("hostel.provider").getEffectiveLevel())
        # Sockets live in a private 0700 directory (made by start(): constructors do no I/O), short enough for
        # the 108-byte Unix socket path limit, its name unguessable.
        self._socket_dir = Path(tempfile.gettempdir()) / f"hostel-{os.getpid()}-{secrets.token_hex(6)}"
        self.callbacks = CallbackServer(
            self, self._socket_dir / "host.sock", max_message_bytes=plan.settings.max_message_mb * 2**20
        )
        self.supervisor = Supervisor(
            plan.providers,
            SupervisorContext(
                plan.settings,
                self.envs,
                self._socket_dir,
                self._log_level,
                self.callbacks,
                external_apis=plan.external_apis,
                base_dir=plan.config.base_dir,
                prime=self._prime,
            ),
        )
        self.registry = HostRegistry(plan, self._tell, default_state_dir(plan.config, self.envs.home))
        self._state: StateClaim | None = None
        self._started: list[str] = []  # the providers start() was asked for, and those reloads added
        self._running = False
        self._observers: list[CallObserver] = []

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any],
        *,
        home: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        locked: bool = False,
        env_file: str | os.PathLike[str] | None = None,
    ) -> Host:
        """Load and validate a run config (a YAML path or a dict); raises ``ConfigError`` listing every problem.

        ``environ`` (default: the process's) and ``env_file`` (a ``.env`` file whose values win) give the
        ``${env.…}`` values and what workers' ``env:`` passes; ``reload()`` reads them again."""
        plan = load_plan(source, environ=environ_with(env_file, environ))
        host = cls(plan, home=Path(home) if home else None, locked=locked, env_file=env_file, environ=environ)
        host._source = source
        return host

    async def build(self, provider_ids: Sequence[str] | None = None) -> None:
        """Build (or reuse) the envs of the given providers, all by default."""
        await self.supervisor.build(provider_ids)

    async def start(self, provider_ids: Sequence[str] | None = None) -> None:
        """Start the given providers (all by default) and their dependencies; all start or none is left running."""
        ids = (
            self._with_dependencies(provider_ids)
            if provider_ids is not None
            else [p.provider_id for p in self.plan.providers]
        )
        if self.plan.telemetry:
            settings = self.plan.settings.telemetry
            try:
                service_name = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or "hostel"
                _telemetry.configure(endpoint=settings.endpoint, headers=settings.headers, service_name=service_name)
            except _telemetry.TelemetryUnavailableError as exc:
                raise ConfigError([Problem(self.plan.config.label, "hostel.telemetry", str(exc))]) from None
        state = default_state_dir(self.plan.config, self.envs.home)
        if state is not None and self._state is None and not self.registry.opened:
            self._state = claim_state(state)
            if self._state is None:  # another host holds this config's state: registrations stay in memory
                self.registry.keep_in(None)
        if not self._socket_dir.exists():
            sweep_socket_dirs(self._socket_dir.parent)
            os.mkdir(self._socket_dir, 0o700)  # fails, rather than use it, if someone made it first
        await self.callbacks.start()
        try:
            await self.supervisor.start(ids)
        except BaseException:
            await self.callbacks.stop()
            raise
        self._started = ids
        self._running = True

    def _with_dependencies(self, provider_ids: Sequence[str]) -> list[str]:
        wanted: set[str] = set()

        def add(pid: str) -> None:
            if pid in wanted:
                return
            plan = self.plan.provider(pid)  # KeyError for an unknown id, reported by the caller
            wanted.add(pid)
            for dep in plan.policy.dependencies:
                add(dep)

        for pid in provider_ids:
            add(pid)
        return [p.provider_id for p in self.plan.providers if p.provider_id in wanted]

    async def stop(self, *, grace_s: float | None = None) -> None:
        """Stop every worker and remove the socket directory, within ``grace_s`` (default ``stop_grace_s``)
        plus a few seconds to kill what ignores it. Dependents stop first; nothing is restarted meanwhile."""
        self._running = False
        try:
            await self.supervisor.stop(grace_s)
            await self.callbacks.stop()
        finally:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            _telemetry.shutdown()
            if self._state is not None:
                self._state.release()
                self._state = None

    def kill(self) -> None:
        """SIGKILL every worker now, restarting none (a forced stop; ``stop()`` then finishes at once)."""
        self.supervisor.kill_all()

    async def restart(self, provider_id: str) -> ProviderStatus:
        """Start one provider afresh, re-arming it when it is ``failed``; its crash count starts over. A running
        one is replaced rolling: its new worker serves before the old one stops, so no call fails. Raises
        ``ProviderStartError`` if it cannot start (a running one then keeps its old worker)."""
        provider = self._known(provider_id)
        await provider.rearm()
        return provider.status()

    async def stop_provider(self, provider_id: str) -> ProviderStatus:
        """Stop one provider until ``start_provider``: new calls are refused at once (503), calls in flight
        finish (``drain_grace_s``), then its worker stops."""
        provider = self._known(provider_id)
        await provider.stop()
        return provider.status()

    async def start_provider(self, provider_id: str) -> ProviderStatus:
        """Start a stopped, idle or failed provider now; a running one is left as it is."""
        provider = self._known(provider_id)
        await provider.start_by_operator()
        return provider.status()

    def _known(self, provider_id: str) -> Provider:
        provider = self.supervisor.providers.get(provider_id)
        if provider is None:
            raise RoutingError(f"no provider {provider_id!r}", provider_id=provider_id)
        if not self._running:
            raise ProviderUnavailableError(
                f"provider {provider_id!r} is not started; start the host first", provider_id=provider_id
            )
        return provider

    async def reload(self, config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> ReloadReport:
        """Apply a new run config (default: read the same file, and ``env_file``, again) without a restart:
        providers added, removed, replaced rolling or updated in place, models switched (docs/lifecycle.md).

        A config that does not validate raises ``ConfigError`` and changes nothing. A provider whose new
        version cannot be built or started keeps its old worker; the report's ``failed`` says why."""
        if not self._running:
            raise ProviderUnavailableError("the host is not started; start it before reloading")
        source = config if config is not None else self._source
        if source is None:
            raise ConfigError(
                [Problem("<config>", "", "this host was made from a dict: pass the new config to reload()")]
            )
        async with self._reloading:
            new = load_plan(
                source, environ=environ_with(self._env_file, self._environ), external_apis=self.plan.external_apis
            )
            if self.plan.ray_address is not None:
                new = new.with_ray(self.plan.ray_address)
            report, self.plan = await apply_reload(self.supervisor, self.plan, new)
            self.registry.configure(self.plan)
            if config is not None:
                self._source = config
            self._started = [i for i in self.supervisor.providers]
        level = logging.WARNING if report.failed or report.needs_restart else logging.INFO
        logger.log(level, "reloaded in %.2fs:\n%s", report.seconds, report.summary())
        return report

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def provider(self, provider_id: str, *, timeout: float | None = None, provider_data: Any = None) -> ProviderProxy:
        """A proxy for one provider; ``timeout`` (seconds, capped at ``call_timeout_s``) and ``provider_data``
        apply to each call through it."""
        _check_timeout(timeout)
        if provider_id not in self.supervisor.providers:
            known = ", ".join(self.supervisor.providers) or "none"
            raise RoutingError(f"no provider {provider_id!r}; providers: {known}", provider_id=provider_id)
        return ProviderProxy(self, provider_id, timeout=timeout, provider_data=provider_data)

    def api(self, api: str, *, timeout: float | None = None, provider_data: Any = None) -> ApiHandle:
        """A router for one API, routing by the ``models`` table."""
        _check_timeout(timeout)
        ids = self.registry.providers_of(api)
        if not ids and self.external is not None and api in self.external.apis:
            return self.external.api(api, timeout=timeout, provider_data=provider_data)
        if not ids and api in TABLE_APIS:
            return TableApi(self.registry, TABLE_APIS[api])
        if not ids:
            raise RoutingError(f"no provider serves API {api!r}")
        return ApiRouter(
            self,
            api,
            ids,
            self.plan.config.models,
            timeout=timeout,
            provider_data=provider_data,
            resources=self.registry.tables if api in OWNING_APIS else None,  # no state file for hosts without them
        )

    async def _tell(self, provider_id: str, method: str, value: Any) -> None:
        await self.call(provider_id, method, (value,), {})

    async def _prime(self, plan: ProviderPlan, channel: Channel) -> None:
        await self.registry.prime(plan, channel, self.plan.settings.start_timeout_s)

    @property
    def config(self) -> RunConfig:
        """The validated run config (its ``server`` and ``hostel`` settings, models, providers)."""
        return self.plan.config

    @property
    def traces(self) -> bool:
        """Whether the host traces with OpenTelemetry (``hostel.telemetry``, or the ``OTEL_`` variables)."""
        return self.plan.telemetry

    @property
    def provider_ids(self) -> list[str]:
        """Every provider's id, in start order."""
        return list(self.supervisor.providers)

    def provider_config(self, provider_id: str) -> Mapping[str, Any]:
        """A provider's ``config`` as its worker got it (secrets included: redact before showing it)."""
        provider = self.supervisor.providers.get(provider_id)
        return provider.plan.worker.config if provider is not None else self.plan.provider(provider_id).worker.config

    def models(self, api: str = "inference") -> list[dict[str, Any]]:
        """The models table's rows for providers of ``api``, with Llama Stack's ``Model`` fields."""
        served = {p.provider_id for p in self.plan.providers if p.api == api}
        return [_model_fields(m) for m in self.plan.config.models if m.provider_id in served]

    def serving_channel(self, provider_id: str) -> Channel | None:
        """The channel to a provider's worker if one serves now (its first replica's), else ``None``: for asking
        it something (its ``health()``) without starting it, waiting for it, or queueing behind its calls."""
        provider = self.supervisor.providers.get(provider_id)
        if provider is None or provider.state not in ("ready", "replacing"):
            return None
        return provider.channel

    def env(self, provider_id: str) -> Env | None:
        """The env a provider's workers run from (its path, its Python, the metadata of its build), once built;
        ``None`` for a launcher that brings its own (container, Ray). ``RoutingError`` for an unknown id."""
        provider = self.supervisor.providers.get(provider_id)
        if provider is None:
            raise RoutingError(f"no provider {provider_id!r}", provider_id=provider_id)
        return provider.env

    def build_seconds(self) -> dict[str, float]:
        """How long each built env took to build, by provider."""
        envs = {pid: provider.env for pid, provider in self.supervisor.providers.items()}
        return {
            pid: float(env.metadata["build_seconds"])
            for pid, env in envs.items()
            if env is not None and "build_seconds" in env.metadata
        }

    async def model_record(self, model_id: str) -> dict[str, Any] | None:
        """A row of the models table with Llama Stack's ``Model`` fields (else the external source's), or ``None``."""
        for model in self.plan.config.models:
            if model.model_id == model_id:
                return _model_fields(model)
        return await self.external.model_record(model_id) if self.external is not None else None

    async def shield_record(self, shield_id: str) -> dict[str, Any] | None:
        """A row of the shields table with Llama Stack's ``Shield`` fields (else the external source's), or ``None``."""
        record = self.registry.tables.get(SHIELD, shield_id)
        if record is not None:
            return {"params": {}, **record}
        return await self.external.shield_record(shield_id) if self.external is not None else None

    def status(self, *, usage: bool = False) -> list[ProviderStatus]:
        """The state of every provider, in start order; with ``usage``, each local worker's memory (RSS, PSS)
        and CPU time too (reading them costs about a millisecond per worker)."""
        return [slot.status(usage=usage) for slot in self.supervisor.providers.values()]

    def own_usage(self) -> Usage | None:
        """The host process's own memory (RSS, PSS) and CPU time."""
        return process_usage()

    async def call(
        self,
        provider_id: str,
        method: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        timeout: float | None = None,
        provider_data: Any = None,
    ) -> Any:
        """Call one provider method by name (what proxies use)."""
        slot = self.supervisor.providers.get(provider_id)
        if slot is None:
            raise RoutingError(f"no provider {provider_id!r}", provider_id=provider_id)
        if slot.state == "stopped" and provider_id not in self._started:
            raise ProviderUnavailableError(
                f"provider {provider_id!r} is not started; "
                "use `async with Host.from_config(...)` or await host.start()",
                provider_id=provider_id,
            )
        if _telemetry.on():
            return await self._traced(slot, method, args, kwargs, timeout=timeout, provider_data=provider_data)
        return await self._observed(slot, method, args, kwargs, timeout=timeout, provider_data=provider_data)

    async def _traced(
        self, slot: Provider, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], **options: Any
    ) -> Any:
        span = _telemetry.start_call(slot.provider_id, method, slot.plan.api)
        assert span is not None
        try:
            result = await self._observed(slot, method, args, kwargs, **options)
        except BaseException as exc:
            span.leave()
            span.end(exc)
            raise
        span.leave()
        if hasattr(result, "__aiter__"):
            span.span.set_attribute("hostel.stream", True)
            return _telemetry.TracedStream(result, span)
        span.end()
        return result

    async def _observed(
        self,
        slot: Provider,
        method: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        timeout: float | None,
        provider_data: Any,
    ) -> Any:
        provider_id = slot.provider_id
        if not self._observers:
            return await slot.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)
        for observer in self._observers:
            observer.started(provider_id, method)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return await slot.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)
        except BaseException as exc:
            error = exc
            raise
        finally:
            for observer in self._observers:
                observer.finished(provider_id, method, time.perf_counter() - started, error)

    def add_observer(self, observer: CallObserver) -> None:
        """Be told when each call starts and ends (the gateway's metrics use this)."""
        self._observers.append(observer)
