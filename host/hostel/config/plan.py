"""Joins a run config with its provider specs: what each provider is, what it needs, in what order to start.

``load_plan`` reports every problem at once, from the config and from every spec it uses.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hostel.config import (
    HostelSettings,
    Launcher,
    Limits,
    ProviderConfig,
    ProviderEntry,
    RestartPolicy,
    RunConfig,
    SandboxSettings,
    StartMode,
    read_run_config,
)
from hostel.config.environment import collector_port, otel_environment, traces, worker_environment
from hostel.config.order import check_max_running, resolve_order
from hostel.config.specs import ProviderSpec, apply_overrides, load_specs, package_spec, resolve_requirement
from hostel.errors import ConfigError, Problem


@dataclass(frozen=True)
class WorkerRecipe:
    """What a new worker of a provider is made from: a running worker cannot take a change to any of it."""

    spec: ProviderSpec
    config: Mapping[str, Any]
    pip_packages: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    python: str | None = None
    memory_mb: int | None = None
    dependency_apis: tuple[str, ...] = ()  # the APIs its deps hold: required ones, and optional ones served
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # spec_overrides, kept for package specs
    launcher: Launcher = "process"  # where its worker runs: a local process, a container, a Ray actor
    container_image: str | None = None
    cpus: float | None = None
    retain_freed_mb: int = 0  # hostel.retain_freed_mb, capped at a quarter of memory_mb
    expose: tuple[str, ...] = ()  # methods callable besides the API protocol's (lifecycle methods never are)
    # The worker's environment besides the minimal one (hostel.pass_env and its entry's env:), with the values
    # the host's environment (and --env-file) gave when the config was read: a changed secret is a changed plan.
    env: tuple[tuple[str, str], ...] = ()
    # The worker's sandbox request (``read``, ``write``, ``connect_ports``: absolute paths, ports), if any.
    sandbox: Mapping[str, Any] | None = None
    rlimits: Mapping[str, int] = dataclasses.field(default_factory=dict)  # open_files, processes, cpu_seconds
    telemetry: Mapping[str, Any] | None = None  # set when the host traces: {"instrument": bool}
    # With the Ray launcher: num_cpus, num_gpus, resources, node_id, soft, strategy (its entry's ray:).
    placement: Mapping[str, Any] | None = None
    zygote: bool = False  # fork its workers from a zygote (process launcher)
    zygote_preload: bool = False  # and its zygote imports the provider's module (zygote: preload)
    # What an OGX / Llama Stack server gives its providers besides config and deps, passed to the worker as is:
    # the storage backends their configs name (the run config's storage.backends, or the bridge's server's), and
    # the server's access policy (the bridge's; a factory that takes ``policy`` gets it).
    storage: Mapping[str, Any] | None = None
    access_policy: tuple[Any, ...] = ()
    # The methods of each API its deps hold, where the host knows what answers them (a server's routers, through
    # the bridge): its deps offer those and no other attribute. None: any name is a method.
    dependency_methods: Mapping[str, tuple[str, ...]] | None = None
    # Provider data its validator rejects reaches it as none, the call going on, as in a Llama Stack server (the
    # bridge's); else the call fails with ProviderDataError (hostel's gateway: 400).
    lenient_provider_data: bool = False


@dataclass(frozen=True)
class ProviderPolicy:
    """How the host runs a provider's workers: a running worker takes a change to any of it as it is."""

    restart: RestartPolicy = dataclasses.field(default_factory=RestartPolicy)
    max_concurrent_calls: int = Limits().max_concurrent_calls
    max_queued_calls: int = Limits().max_queued_calls
    start: StartMode = "eager"  # lazy: the worker starts on the first call
    idle_stop_s: float | None = None  # stop the worker after this long without calls
    dependencies: tuple[str, ...] = ()  # provider ids serving its api_dependencies
    optional_dependencies: tuple[str, ...] = ()  # provider ids serving its optional_api_dependencies
    replicas: int = 1  # workers behind this provider id (its entry's replicas)


@dataclass(frozen=True)
class ProviderPlan:
    """Everything needed to build and start one provider: who it is, what its workers are made from (``worker``),
    and how the host runs them (``policy``). A reload needs a new worker exactly when ``worker`` changed."""

    provider_id: str
    api: str
    worker: WorkerRecipe
    policy: ProviderPolicy = ProviderPolicy()
    replica: int = 0  # which of its replicas a worker serves (0 for the provider's own plan)

    @property
    def spec(self) -> ProviderSpec:
        """Its provider spec."""
        return self.worker.spec

    @property
    def provider_type(self) -> str:
        """``remote::NAME`` or ``inline::NAME``."""
        return self.worker.spec.provider_type

    @property
    def builds_env(self) -> bool:
        """Whether its venv is built on this machine (the process launcher's workers run from it)."""
        return self.worker.launcher == "process"

    def with_worker(self, **changes: Any) -> ProviderPlan:
        """This plan with ``changes`` to its worker recipe."""
        return dataclasses.replace(self, worker=dataclasses.replace(self.worker, **changes))

    def with_policy(self, **changes: Any) -> ProviderPlan:
        """This plan with ``changes`` to its policy."""
        return dataclasses.replace(self, policy=dataclasses.replace(self.policy, **changes))


@dataclass(frozen=True)
class Plan:
    """A validated run config with every provider resolved, in dependency (start) order."""

    config: RunConfig
    providers: tuple[ProviderPlan, ...]
    external_apis: frozenset[str] = frozenset()  # APIs served outside this host (the Llama Stack bridge's deps)
    ray_address: str | None = None  # set by with_ray (hostel run --ray): a reload applies it again
    telemetry: bool = False  # the host traces (hostel.telemetry, or the OTEL_ variables)

    @property
    def settings(self) -> HostelSettings:
        """The ``hostel:`` settings."""
        return self.config.hostel

    def provider(self, provider_id: str) -> ProviderPlan:
        """The provider with that id; ``KeyError`` if none."""
        for plan in self.providers:
            if plan.provider_id == provider_id:
                return plan
        raise KeyError(provider_id)

    def with_ray(self, address: str) -> Plan:
        """This plan with Ray as every provider's launcher unless its entry names one (``hostel run --ray``)."""
        settings = self.settings.model_copy(
            update={"launcher": "ray", "ray": self.settings.ray.model_copy(update={"address": address})}
        )
        config = dataclasses.replace(self.config, hostel=settings)
        problems: list[Problem] = []
        providers = []
        for plan in self.providers:
            entry = config.provider(plan.provider_id).entry
            launcher = _launcher(
                entry,
                plan.spec,
                image=plan.worker.container_image,
                default="ray",
                key=f"providers.{plan.api}[{plan.provider_id}]",
                label=config.label,
                problems=problems,
            )
            providers.append(plan.with_worker(launcher=launcher or plan.worker.launcher))
        if problems:
            raise ConfigError(problems)
        return dataclasses.replace(self, config=config, providers=tuple(providers), ray_address=address)


def load_plan(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    external_apis: frozenset[str] = frozenset(),
) -> Plan:
    """Load and validate a run config and its specs; raise ``ConfigError`` listing every problem.

    ``external_apis``: APIs something outside this host serves, which providers may depend on.
    """
    environ = os.environ if environ is None else environ
    config, problems = read_run_config(source, environ=environ)
    specs: dict[tuple[str, str], ProviderSpec] = {}
    if config.external_providers_dir is not None:
        specs, spec_problems = load_specs(config.external_providers_dir)
        problems.extend(spec_problems)
    elif any(not p.entry.module for p in config.providers):
        problems.append(
            Problem(
                config.label,
                "external_providers_dir",
                "is not set; point it at the directory holding remote/ and inline/ specs",
            )
        )

    storage = _storage(config, problems)
    plans: list[ProviderPlan] = []
    for provider in config.providers:
        plan = _plan_one(config, provider, specs, problems, environ)
        if plan is not None:
            plans.append(plan.with_worker(storage=storage) if storage is not None else plan)
    if not problems:
        plans = resolve_order(config.label, plans, problems, external_apis)
    if not problems:
        check_max_running(config, plans, problems)
    if problems:
        raise ConfigError(problems)
    return Plan(
        config=config, providers=tuple(plans), external_apis=external_apis, telemetry=traces(config.hostel, environ)
    )


def _entry_or_default(entry: ProviderEntry, config: RunConfig, name: str) -> Any:
    """A provider's own setting ``name``, or the ``hostel:`` block's for every provider when its entry has none."""
    own = getattr(entry, name)
    return own if own is not None else getattr(config.hostel, name)


def _plan_one(
    config: RunConfig,
    provider: ProviderConfig,
    specs: Mapping[tuple[str, str], ProviderSpec],
    problems: list[Problem],
    environ: Mapping[str, str],
) -> ProviderPlan | None:
    entry = provider.entry
    key = f"providers.{provider.api}[{entry.provider_id}]"
    spec = _spec(config, provider, specs, key, problems)
    if spec is None:
        return None
    extras = tuple(resolve_requirement(r, config.base_dir) for r in entry.pip_packages)
    if spec.from_package and any(_holds_package(r, spec.module) for r in extras):
        spec = dataclasses.replace(spec, pip_packages=())  # a local directory in pip_packages provides the module
    worker = _recipe(config, entry, spec, extras=extras, key=key, problems=problems, environ=environ)
    policy = _policy(config, entry, key, problems)
    if worker is None or policy is None:
        return None
    return ProviderPlan(provider_id=entry.provider_id, api=provider.api, worker=worker, policy=policy)


def _spec(
    config: RunConfig,
    provider: ProviderConfig,
    specs: Mapping[tuple[str, str], ProviderSpec],
    key: str,
    problems: list[Problem],
) -> ProviderSpec | None:
    """The provider's spec: its spec file's, or its package's (``module:``), with its ``spec_overrides``."""
    entry = provider.entry
    spec = specs.get((provider.api, entry.provider_type))
    if spec is None and entry.module:
        spec = package_spec(provider.api, entry.provider_type, entry.module)
    if spec is None:
        if config.external_providers_dir is None:
            return None
        known = sorted(t for (api, t) in specs if api == provider.api)
        expected = config.external_providers_dir / entry.kind / provider.api / f"{entry.type_name}.yaml"
        problems.append(
            Problem(
                config.label,
                f"{key}.provider_type",
                f"unknown provider type {entry.provider_type!r} for API {provider.api!r}: no spec file {expected}; "
                f"known {provider.api} types: {', '.join(known) or 'none'}",
            )
        )
        return None
    if not entry.spec_overrides:
        return spec
    try:
        return apply_overrides(spec, entry.spec_overrides)  # for a package spec: checked now, applied again later
    except ValueError as exc:
        problems.append(Problem(config.label, f"{key}.spec_overrides", str(exc)))
        return None


def _recipe(
    config: RunConfig,
    entry: ProviderEntry,
    spec: ProviderSpec,
    *,
    extras: tuple[str, ...],
    key: str,
    problems: list[Problem],
    environ: Mapping[str, str],
) -> WorkerRecipe | None:
    """What the provider's workers are made from."""
    image = entry.container_image or spec.container_image
    launcher = _launcher(
        entry, spec, image=image, default=config.hostel.launcher, key=key, label=config.label, problems=problems
    )
    if launcher is None:
        return None
    sandbox = _sandbox(entry, config, launcher, key=key, problems=problems)
    tracing = traces(config.hostel, environ)
    if tracing and sandbox is not None and sandbox["connect_ports"] is not None:
        sandbox["connect_ports"] = [*sandbox["connect_ports"], collector_port(config.hostel, environ)]
    limits = entry.limits or Limits()
    zygote = _entry_or_default(entry, config, "zygote")
    rlimits = {"open_files": limits.open_files, "processes": limits.processes, "cpu_seconds": limits.cpu_seconds}
    return WorkerRecipe(
        spec=spec,
        config=entry.config,
        pip_packages=spec.pip_packages + extras,
        constraints=tuple(entry.constraints),
        python=entry.python,
        memory_mb=limits.memory_mb,
        overrides=dict(entry.spec_overrides),
        launcher=launcher,
        container_image=image,
        cpus=limits.cpus,
        expose=tuple(entry.expose),
        env=worker_environment(config.hostel.pass_env, entry, environ)
        + (otel_environment(config.hostel, environ) if tracing else ()),
        sandbox=sandbox,
        rlimits={name: value for name, value in rlimits.items() if value is not None},
        retain_freed_mb=_retained(config.hostel.retain_freed_mb, limits.memory_mb),
        telemetry={"instrument": config.hostel.telemetry.instrument} if tracing else None,
        placement=entry.ray.model_dump(exclude_none=True) if entry.ray is not None else None,
        zygote=bool(zygote) and launcher == "process",
        zygote_preload=zygote == "preload" and launcher == "process",
    )


def _policy(config: RunConfig, entry: ProviderEntry, key: str, problems: list[Problem]) -> ProviderPolicy | None:
    """How the host runs the provider's workers (dependencies are filled in once every provider is known)."""
    limits = entry.limits or Limits()
    start, idle_stop_s = _entry_or_default(entry, config, "start"), _entry_or_default(entry, config, "idle_stop_s")
    replicas = (os.cpu_count() or 1) if entry.replicas == "auto" else entry.replicas
    if replicas > 1 and (start == "lazy" or idle_stop_s is not None):
        problems.append(
            Problem(
                config.label,
                f"{key}.replicas",
                "replicas cannot be combined with start: lazy or idle_stop_s (a provider with replicas keeps them "
                "running); remove one",
            )
        )
        return None
    return ProviderPolicy(
        restart=_entry_or_default(entry, config, "restart"),
        max_concurrent_calls=limits.max_concurrent_calls,
        max_queued_calls=limits.max_queued_calls,
        start=start,
        idle_stop_s=idle_stop_s,
        replicas=replicas,
    )


def _storage(config: RunConfig, problems: list[Problem]) -> Mapping[str, Any] | None:
    """The run config's ``storage.backends`` (OGX's and Llama Stack 0.3+'s layout), which every worker registers
    before its factory runs so that ``kvstore``/``sql_store`` references in provider configs resolve; each backend
    is checked by the provider's own OGX or Llama Stack in its worker."""
    section = config.raw.get("storage")
    if section is None:
        return None
    backends = section.get("backends") if isinstance(section, Mapping) else None
    if not isinstance(backends, Mapping) or not all(
        isinstance(backend, Mapping) and isinstance(backend.get("type"), str) for backend in backends.values()
    ):
        problems.append(
            Problem(
                config.label,
                "storage.backends",
                "must map each backend name to its config with a `type` (kv_sqlite, sql_sqlite, kv_postgres, ...)",
            )
        )
        return None
    storage: dict[str, Any] = {"backends": dict(backends)}
    if section.get("tenancy") is not None:
        storage["tenancy"] = section["tenancy"]
    return storage


def _retained(retain_freed_mb: int, memory_mb: int | None) -> int:
    """Freed memory a worker may keep: retained pages count towards the memory limit, so a quarter of it at most."""
    return retain_freed_mb if memory_mb is None else min(retain_freed_mb, memory_mb // 4)


def _sandbox(
    entry: ProviderEntry, config: RunConfig, launcher: Launcher, *, key: str, problems: list[Problem]
) -> dict[str, Any] | None:
    """The worker's sandbox request, from its entry or the host-wide default; paths made absolute."""
    asked = _entry_or_default(entry, config, "sandbox")
    if asked is False:
        return None
    if launcher != "process":
        if entry.sandbox not in (None, False):
            problems.append(
                Problem(
                    config.label,
                    f"{key}.sandbox",
                    f"the sandbox confines process workers; the {launcher} launcher isolates its own way "
                    "(docs/security.md): drop sandbox: or use launcher: process",
                )
            )
        return None
    settings = asked if isinstance(asked, SandboxSettings) else SandboxSettings()

    def absolute(paths: list[str]) -> list[str]:
        return [str((config.base_dir / os.path.expanduser(p)).resolve()) for p in paths]

    network = settings.network
    ports = (
        None if network == "any" else [] if network == "none" else [int(e.rpartition(":")[2]) for e in network.connect]
    )
    return {
        "read": absolute(settings.readable),
        "write": absolute(settings.writable),
        "connect_ports": ports,
        "unix_sockets": settings.unix_sockets,
    }


def _launcher(
    entry: ProviderEntry,
    spec: ProviderSpec,
    *,
    image: str | None,
    default: Launcher | None,
    key: str,
    label: str,
    problems: list[Problem],
) -> Launcher | None:
    """The entry's launcher, else the host-wide one, else container for an image-only spec, else process."""
    if entry.launcher is not None:
        launcher, where = entry.launcher, f"{key}.launcher"
    elif default is not None:
        launcher, where = default, "hostel.launcher"
    else:
        launcher = "container" if image and not spec.pip_packages and not entry.pip_packages else "process"
        where = f"{key}.container_image"
    if launcher == "container" and not image:
        problems.append(
            Problem(label, where, "the container launcher needs an image: set container_image in the spec or entry")
        )
        return None
    if launcher != "process" and spec.from_package:
        problems.append(
            Problem(
                label,
                where,
                f"a `module:` provider runs with the process launcher only (its spec is read inside a local venv); "
                f"give it a spec file in external_providers_dir to use launcher {launcher!r}",
            )
        )
        return None
    if entry.ray is not None and entry.launcher is not None and entry.launcher != "ray":
        # Without a launcher of its own it may still run on Ray (hostel.launcher, hostel run --ray).
        problems.append(
            Problem(label, f"{key}.ray", f"Ray placement needs launcher: ray (this entry says {entry.launcher})")
        )
        return None
    if launcher == "ray" and entry.constraints:
        problems.append(
            Problem(label, f"{key}.constraints", "not supported with the ray launcher; pin versions in pip_packages")
        )
        return None
    return launcher


def _holds_package(requirement: str, module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    return os.path.isdir(requirement) and any(os.path.isdir(os.path.join(requirement, sub, top)) for sub in ("", "src"))


def adopt_declared_spec(plan: ProviderPlan, env_metadata: Mapping[str, Any] | None) -> ProviderPlan | None:
    """A ``module:`` provider's plan with the spec its package declared, as its env build recorded it in the env's
    metadata; ``None`` if there is nothing to adopt (a spec-file provider, or no spec recorded)."""
    found = (env_metadata or {}).get("provider_spec")
    return with_resolved_spec(plan, found) if found and plan.spec.from_package else None


def with_resolved_spec(plan: ProviderPlan, found: Mapping[str, Any]) -> ProviderPlan:
    """``plan`` with the spec a package declared (``get_provider_spec()`` or an entry point, run in its venv)."""
    found = {**found, **{k: v for k, v in plan.worker.overrides.items() if k != "pip_packages"}}
    spec = dataclasses.replace(
        plan.spec,
        declared=plan.spec.declared or (plan.spec.module, plan.spec.config_class),
        module=str(found.get("module") or plan.spec.module),
        config_class=found.get("config_class") or plan.spec.config_class,
        provider_data_validator=found.get("provider_data_validator") or plan.spec.provider_data_validator,
        api_dependencies=tuple(found.get("api_dependencies") or ()),
        optional_api_dependencies=tuple(found.get("optional_api_dependencies") or ()),
        container_image=found.get("container_image") or plan.spec.container_image,
    )
    return plan.with_worker(spec=spec)
