"""hostel: runs Llama Stack style external providers each in its own virtualenv and process, over gRPC."""

from __future__ import annotations

from hostel.errors import (
    CallTimeoutError,
    ConfigError,
    EnvBuildError,
    HostelError,
    ProviderBusyError,
    ProviderCrashedError,
    ProviderDataError,
    ProviderStartError,
    ProviderUnavailableError,
    RemoteError,
    RoutingError,
)
from hostel.host import Host
from hostel.supervisor import ProviderStatus

__version__ = "0.1.0"

__all__ = [
    "CallTimeoutError",
    "ConfigError",
    "EnvBuildError",
    "Host",
    "HostelError",
    "ProviderBusyError",
    "ProviderCrashedError",
    "ProviderDataError",
    "ProviderStartError",
    "ProviderStatus",
    "ProviderUnavailableError",
    "RemoteError",
    "RoutingError",
    "__version__",
]
