"""The run config layer: the run config's schema (``schema``, ``server``), reading and validating it (``run``,
and its problems as a user reads them: ``problems``), ``${env.…}`` substitution (``envsubst``), provider specs
(``specs``) and the plan that joins them (``plan``). Knows nothing of envs, workers, calls or front doors.
``hostel.config`` itself offers the run config's models."""

from __future__ import annotations

from hostel.config.run import load_run_config, read_run_config
from hostel.config.schema import (
    ContainerSettings,
    HostelSettings,
    Launcher,
    Limits,
    ModelEntry,
    NetworkRules,
    ProviderConfig,
    ProviderEntry,
    RaySettings,
    RestartPolicy,
    RunConfig,
    SafetySettings,
    SandboxSettings,
    ShieldEntry,
    StartMode,
    TelemetrySettings,
    TlsSettings,
)
from hostel.config.server import (
    AuthSettings,
    BearerAuth,
    CorsSettings,
    CustomAuth,
    JwksSettings,
    OAuth2TokenAuth,
    ServerSettings,
)

__all__ = [
    "AuthSettings", "BearerAuth", "ContainerSettings", "CorsSettings", "CustomAuth", "HostelSettings", "JwksSettings",
    "Launcher", "Limits", "ModelEntry", "NetworkRules", "OAuth2TokenAuth", "ProviderConfig", "ProviderEntry",
    "RaySettings", "RestartPolicy", "RunConfig", "SafetySettings", "SandboxSettings", "ServerSettings", "ShieldEntry",
    "StartMode", "TelemetrySettings", "TlsSettings", "load_run_config", "read_run_config",
]  # fmt: skip
