"""hostel: runs Llama Stack style external providers each in its own virtualenv and process, over gRPC."""

from __future__ import annotations

from hostel.errors import (
    BadArgumentsError,
    CallTimeoutError,
    ConfigError,
    EnvBuildError,
    HostelError,
    MethodNotFoundError,
    PayloadTooLargeError,
    ProviderBusyError,
    ProviderCrashedError,
    ProviderDataError,
    ProviderStartError,
    ProviderUnavailableError,
    RemoteError,
    RoutingError,
    WorkerProtocolError,
)
from hostel.host import Host
from hostel.supervisor import ProviderStatus

__version__ = "0.1.0"

__all__ = [
    "BadArgumentsError",
    "CallTimeoutError",
    "ConfigError",
    "EnvBuildError",
    "Host",
    "HostelError",
    "MethodNotFoundError",
    "PayloadTooLargeError",
    "ProviderBusyError",
    "ProviderCrashedError",
    "ProviderDataError",
    "ProviderStartError",
    "ProviderStatus",
    "ProviderUnavailableError",
    "RemoteError",
    "RoutingError",
    "WorkerProtocolError",
    "__version__",
]
