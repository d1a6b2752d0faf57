"""hostel: runs Llama Stack style external providers each in its own virtualenv and process, over gRPC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hostel_sdk import _grpc_env

_grpc_env.prefer_epoll_polling()  # before anything of hostel imports grpc

from hostel.errors import (  # noqa: E402 - after gRPC's polling is chosen
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

if TYPE_CHECKING:
    from hostel._usage import Usage
    from hostel.host import Host
    from hostel.supervise.reload import ReloadReport
    from hostel.supervise.status import ProviderStatus

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
    "ReloadReport",
    "RemoteError",
    "RoutingError",
    "Usage",
    "WorkerProtocolError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``Host``, ``ProviderStatus``, ``ReloadReport`` and ``Usage`` load on first use, with grpc and the rest of
    the core: ``import hostel.config`` (or ``hostel.errors``) stays light."""
    if name == "Host":
        from hostel.host import Host

        return Host
    if name == "ProviderStatus":
        from hostel.supervise.status import ProviderStatus

        return ProviderStatus
    if name == "ReloadReport":
        from hostel.supervise.reload import ReloadReport

        return ReloadReport
    if name == "Usage":
        from hostel._usage import Usage

        return Usage
    raise AttributeError(f"module 'hostel' has no attribute {name!r}")
