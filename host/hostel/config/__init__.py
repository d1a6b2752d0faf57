"""The run config layer: reading and validating a run config (``run``, ``server``), ``${env.…}``
substitution (``envsubst``), provider specs (``specs``) and the plan that joins them (``plan``). Knows
nothing of envs, workers, calls or front doors. ``hostel.config`` itself offers the run config's models.
"""

from __future__ import annotations

from hostel.config.run import (
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
    SandboxSettings,
    ShieldEntry,
    StartMode,
    TelemetrySettings,
    TlsSettings,
    load_run_config,
    read_run_config,
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
    "RaySettings", "RestartPolicy", "RunConfig", "SandboxSettings", "ServerSettings", "ShieldEntry", "StartMode",
    "TelemetrySettings", "TlsSettings", "load_run_config", "read_run_config",
]  # fmt: skip
