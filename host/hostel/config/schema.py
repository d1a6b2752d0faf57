"""The run config's schema: the pydantic models of its sections and entries, and the validated ``RunConfig``.

The comments on the fields are the config reference (docs/config.md follows them). Loading, ``${env.…}``
substitution and problem reporting live in ``hostel.config.run``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hostel.config.server import (
    ServerSettings,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RestartPolicy(_Strict):
    """How a crashed worker is restarted: exponential backoff, and a crash-loop limit."""

    max_restarts: int = Field(5, ge=0)
    window_s: float = Field(60.0, gt=0)
    backoff_initial_s: float = Field(0.2, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)


class Limits(_Strict):
    """Resource limits enforced on a worker process, and on the calls it is given."""

    memory_mb: int | None = Field(None, gt=0)
    cpus: float | None = Field(None, gt=0)  # container launcher only: the engine's --cpus
    # Calls the provider runs at once; more wait in its queue, up to max_queued_calls; past that a call is
    # refused at once (ProviderBusyError, HTTP 503). Streams hold their place until they end.
    max_concurrent_calls: int = Field(256, gt=0)
    max_queued_calls: int = Field(1024, ge=0)
    # Process worker rlimits (soft and hard). processes counts every process of this user (RLIMIT_NPROC).
    open_files: int | None = Field(None, gt=0)
    processes: int | None = Field(None, gt=0)
    cpu_seconds: int | None = Field(None, gt=0)


class NetworkRules(_Strict):
    """TCP a sandboxed worker may open: ``host:port`` entries (Landlock filters by port; the host is kept for
    the reader and checked to be well formed)."""

    connect: list[str] = Field(default_factory=list)

    @field_validator("connect")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for entry in value:
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{entry!r} is not host:port (e.g. api.openai.com:443)")
        return value


class SandboxSettings(_Strict):
    """``sandbox:`` of a process worker: what it may read and write besides its venv, interpreter and
    private directory, and what TCP it may open (``any``, ``none``, or ``{connect: [host:port, ...]}``)."""

    writable: list[str] = Field(default_factory=list)
    readable: list[str] = Field(default_factory=list)
    # none by default: a provider that calls an upstream says so ({connect: [host:port]}, or any).
    network: Literal["any", "none"] | NetworkRules = "none"
    # own: named Unix sockets outside what it may read or write (docker.sock, an ssh agent, D-Bus) are not
    # there for it (a private root); any: they are, for machines without unprivileged user namespaces.
    unix_sockets: Literal["own", "any"] = "own"


Launcher = Literal["process", "container", "ray"]
StartMode = Literal["eager", "lazy"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ContainerSettings(_Strict):
    """How the container launcher runs workers (the ``hostel.container:`` block)."""

    engine: Literal["auto", "podman", "docker"] = "auto"  # auto: podman if installed, else docker
    # The engine's --network; none: the engine's default, isolated network. "host" gives that isolation up so
    # a provider can reach services on the host's loopback (an Ollama on 127.0.0.1, say).
    network: str | None = None
    python: str = "python"  # the image's interpreter, which must have hostel-sdk installed
    run_args: list[str] = Field(default_factory=list)  # appended to `<engine> run`, e.g. ["--runtime", "runc"]


class TlsSettings(_Strict):
    """TLS for gRPC over TCP between the host and remote workers (PEM files)."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    server_name: str | None = None  # the name both sides' certificate is checked against, if not the address


class RaySettings(_Strict):
    """How the Ray launcher places workers (the ``hostel.ray:`` block)."""

    address: str | None = None  # ray.init(address=...): "auto", "ray://head:10001", "host:6379"; None starts one
    namespace: str = "hostel"
    # The address workers use to call back into the host (deps, model_store); by default this node's IP.
    callback_host: str | None = None
    installer: Literal["uv", "pip"] = "uv"  # which runtime_env field carries the provider's packages
    # The installer's options on the nodes (Ray's uv_pip_install_options / pip_install_options); None: Ray's
    # own (uv: --no-cache). Nodes without an index: ["--offline"] (a shared uv cache), or
    # ["--no-index", "--find-links", DIR].
    install_options: list[str] | None = None
    num_cpus: float = Field(0, ge=0)  # the actor's CPU reservation
    resources: dict[str, float] = Field(default_factory=dict)  # custom Ray resources, to pin a provider to nodes
    # true: mutual TLS with a CA the host makes at start and a certificate per worker (recommended);
    # a mapping: your own files, one identity shared by the host and every worker.
    tls: TlsSettings | bool | None = None


class RayPlacement(_Strict):
    """A provider entry's ``ray:`` block: where Ray places its workers, instead of ``hostel.ray``'s defaults."""

    num_cpus: float | None = Field(None, ge=0)  # the actor's CPU reservation (default: hostel.ray.num_cpus)
    num_gpus: float | None = Field(None, ge=0)
    resources: dict[str, float] | None = None  # custom resources (replaces hostel.ray.resources for it)
    node_id: str | None = None  # run on this node (Ray's node id, from `ray status` or ray.nodes())
    soft: bool = False  # with node_id: prefer that node, but run elsewhere if it is gone or full
    # How its replicas are placed: SPREAD (default with replicas > 1: across nodes) or DEFAULT (Ray's packing).
    strategy: Literal["SPREAD", "DEFAULT"] | None = None


class TelemetrySettings(_Strict):
    """``hostel.telemetry``: OpenTelemetry traces from the host and its workers (docs/observability.md)."""

    # None: on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, as for any OpenTelemetry app.
    enabled: bool | None = None
    endpoint: str | None = None  # OTLP/HTTP base URL, e.g. http://collector:4318; default: the OTEL_ variables
    headers: dict[str, str] = Field(default_factory=dict)  # sent with every export (e.g. a collector's token)
    # The host's service.name (default: $OTEL_SERVICE_NAME, else "hostel"); workers are hostel-provider-<id>.
    service_name: str | None = None
    instrument: bool = False  # load the OpenTelemetry instrumentors for the libraries in each provider's venv


ZygoteMode = bool | Literal["preload"]


class HostelSettings(_Strict):
    """hostel's own settings (the ``hostel:`` block of the run config)."""

    restart: RestartPolicy = RestartPolicy()
    call_timeout_s: float = Field(600.0, gt=0)
    start_timeout_s: float = Field(60.0, gt=0)
    build_timeout_s: float = Field(600.0, gt=0)
    stop_grace_s: float = Field(5.0, ge=0)
    installer: Literal["auto", "uv", "pip"] = "auto"
    max_message_mb: int = Field(64, gt=0)
    probe_interval_s: float = Field(5.0, gt=0)  # liveness probe (grpc.health.v1) period
    probe_timeout_s: float = Field(2.0, gt=0)  # a probe not answered within this is missed
    probe_failures: int = Field(3, ge=1)  # missed probes in a row before the worker is killed and restarted
    # A worker whose event loop is blocked but whose process answers (its watchdog thread) is busy, not hung:
    # it is not killed, and its calls end at their deadlines. Set this to kill one blocked longer than this.
    max_blocked_s: float | None = Field(None, gt=0)
    # Keep a spare worker per provider that has already started Python and imported its runtime: a
    # restart then costs the provider's own import and factory only (at ~35 MB of memory per provider).
    standby_workers: bool = False
    # Freed memory a worker keeps for reuse (glibc malloc) instead of handing it back to the OS at once:
    # large arguments then land in warm pages rather than page-faulting fresh ones on every call.
    # 0 = glibc's defaults; a provider with limits.memory_mb keeps at most a quarter of its limit.
    retain_freed_mb: int = Field(64, ge=0)
    # Calls the host holds at once, running or queued, across all providers (deps calls included).
    max_calls: int = Field(4096, gt=0)
    # Environment variables every worker, installer and probe gets from the host besides the minimal ones
    # (docs/security.md); a provider's own `env:` adds to it for that provider alone.
    pass_env: list[str] = Field(default_factory=list)
    # Every process worker's sandbox unless its entry says otherwise (docs/security.md).
    sandbox: bool | SandboxSettings = False
    launcher: Launcher | None = None  # every provider's launcher unless its entry says otherwise
    # When workers start: eager ones with the host; lazy ones on their first call (their envs are built ahead).
    start: StartMode = "eager"
    idle_stop_s: float | None = Field(None, gt=0)  # stop a worker nobody called for this long (it starts again)
    max_running: int | None = Field(None, gt=0)  # workers running at once: the least recently used idle one stops
    # How long a replaced or removed provider's old worker may finish its calls and streams before it is stopped.
    drain_grace_s: float = Field(30.0, ge=0)
    telemetry: TelemetrySettings = TelemetrySettings()
    # Fork each provider's workers from a zygote that has imported the worker runtime: restarts and replicas
    # without a Python start (docs/supervision.md). Process launcher, Linux. "preload": the zygote imports each
    # provider's module too (faster restarts; what the module makes at import is then the same in every worker).
    zygote: ZygoteMode = True
    # Where registered benchmarks, datasets, scoring functions and training jobs persist (a SQLite file in
    # it); default: $HOSTEL_HOME/state/<config file name>-<hash of its path>; a config given as a dict: memory.
    state_dir: Path | None = None
    container: ContainerSettings = ContainerSettings()
    ray: RaySettings = RaySettings()


# Every key a provider entry takes: Llama Stack's and hostel's (``ProviderEntry``'s fields and their aliases).
class ProviderEntry(BaseModel):
    """One entry of ``providers.<api>``: Llama Stack's keys plus hostel's per-provider knobs."""

    model_config = ConfigDict(extra="ignore")

    provider_id: str
    provider_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    module: str | None = None
    python: str | None = None
    pip_packages: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    spec_overrides: dict[str, Any] = Field(default_factory=dict)
    restart: RestartPolicy | None = None
    limits: Limits | None = None
    # Every provider runs in a process of its own: "inline" (in the host) is refused, not silently ignored.
    isolation: Literal["process"] = "process"
    launcher: Launcher | None = None  # default: container if the spec has container_image and no pip packages
    container_image: str | None = None  # overrides the spec's container_image
    expose: list[str] = Field(default_factory=list)  # methods callable from outside besides the API protocol's
    # Confine the worker (process launcher): true for the defaults, or what it may read, write and connect to.
    sandbox: bool | SandboxSettings | None = None  # None: hostel.sandbox decides
    # Environment variables the worker gets besides the minimal ones: names to pass through from the host
    # (a list, or a mapping to null) and values to set (a mapping).
    env: list[str] | dict[str, str | None] = Field(default_factory=list)
    start: StartMode | None = None  # None: hostel.start decides
    idle_stop_s: float | None = Field(None, gt=0)  # None: hostel.idle_stop_s decides
    # Workers behind this provider id, each supervised on its own; "auto": one per CPU core.
    replicas: Annotated[int, Field(ge=1)] | Literal["auto"] = 1
    ray: RayPlacement | None = None  # with launcher: ray, where its workers go (docs/launchers.md)
    zygote: ZygoteMode | None = None  # fork its workers from a pre-imported process (None: hostel.zygote decides)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[str] | dict[str, str | None]) -> list[str] | dict[str, str | None]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name (letters, digits, _)")
        return value

    @property
    def environment(self) -> tuple[tuple[str, str | None], ...]:
        """``env`` as (name, value to set, or None to pass the host's through)."""
        if isinstance(self.env, list):
            return tuple((name, None) for name in self.env)
        return tuple(self.env.items())

    @field_validator("provider_type")
    @classmethod
    def _typed(cls, value: str) -> str:
        kind, sep, name = value.partition("::")
        if not sep or kind not in ("remote", "inline") or not name:
            raise ValueError(f"provider_type {value!r} must look like 'remote::NAME' or 'inline::NAME'")
        return value

    @property
    def kind(self) -> Literal["remote", "inline"]:
        """``remote`` or ``inline``, from the provider type."""
        return "remote" if self.provider_type.startswith("remote::") else "inline"

    @property
    def type_name(self) -> str:
        """The provider type without its ``remote::``/``inline::`` prefix (the spec file's stem)."""
        return self.provider_type.partition("::")[2]


# The keys a provider entry takes: its model's fields, so that a new knob cannot be forgotten here.
PROVIDER_KEYS = frozenset(ProviderEntry.model_fields)


class ModelEntry(BaseModel):
    """One row of the models routing table."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model_id: str
    provider_id: str
    provider_model_id: str | None = None
    model_type: str | None = None


class SafetySettings(BaseModel):
    """The run config's ``safety:`` section, as Llama Stack has it."""

    model_config = ConfigDict(extra="forbid")

    # The shield ``/v1/moderations`` uses when a request names no model (else the only shield, if one).
    default_shield_id: str | None = None


class ShieldEntry(BaseModel):
    """One row of the shields table (what a safety provider's ``shield_store`` answers)."""

    model_config = ConfigDict(extra="allow")

    shield_id: str
    provider_id: str | None = None
    provider_shield_id: str | None = None
    params: dict[str, Any] | None = None


class BenchmarkEntry(BaseModel):
    """One row of the benchmarks table (what ``eval`` providers evaluate); registered ones persist."""

    model_config = ConfigDict(extra="allow")

    benchmark_id: str
    dataset_id: str
    scoring_functions: list[str] = Field(default_factory=list)
    provider_id: str | None = None  # default: the only eval provider
    provider_benchmark_id: str | None = None
    metadata: dict[str, Any] | None = None


class DatasetEntry(BaseModel):
    """One row of the datasets table (what ``datasetio`` providers serve)."""

    model_config = ConfigDict(extra="allow")

    dataset_id: str
    purpose: str = "eval/question-answer"
    source: dict[str, Any]  # {"type": "uri", "uri": ...} or {"type": "rows", "rows": [...]}
    provider_id: str | None = None  # default: the only datasetio provider
    metadata: dict[str, Any] | None = None


class ScoringFnEntry(BaseModel):
    """One row of the scoring functions table (what ``scoring`` providers score with)."""

    model_config = ConfigDict(extra="allow")

    scoring_fn_id: str
    description: str = ""
    return_type: dict[str, Any] = Field(default_factory=lambda: {"type": "number"})
    provider_id: str | None = None  # default: the only scoring provider
    provider_scoring_fn_id: str | None = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProviderConfig:
    """A provider entry together with the API it is listed under."""

    api: str
    entry: ProviderEntry

    @property
    def provider_id(self) -> str:
        """The provider's id."""
        return self.entry.provider_id


@dataclass(frozen=True)
class RunConfig:
    """A validated run config. Paths are absolute; ``source`` is the file it came from, if any."""

    providers: tuple[ProviderConfig, ...]
    models: tuple[ModelEntry, ...]
    shields: tuple[ShieldEntry, ...]
    server: ServerSettings
    hostel: HostelSettings
    external_providers_dir: Path | None
    source: Path | None
    base_dir: Path
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)
    benchmarks: tuple[BenchmarkEntry, ...] = ()
    datasets: tuple[DatasetEntry, ...] = ()
    scoring_fns: tuple[ScoringFnEntry, ...] = ()
    safety: SafetySettings = field(default_factory=SafetySettings)

    def provider(self, provider_id: str) -> ProviderConfig:
        """The provider with that id; ``KeyError`` if none."""
        for provider in self.providers:
            if provider.provider_id == provider_id:
                return provider
        raise KeyError(provider_id)

    @property
    def label(self) -> str:
        """How errors name this config."""
        return str(self.source) if self.source else "<run config>"
