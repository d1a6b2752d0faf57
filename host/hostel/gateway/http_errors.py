"""hostel errors as HTTP responses: one table, and the body shape of docs/http.md. Shared by the two HTTP-facing
front doors (the gateway and the Llama Stack bridge)."""

from __future__ import annotations

from typing import Any

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

# Every hostel error, most specific first (a test checks none is missing). A provider's own exceptions
# (RemoteError) go by their type name below.
_STATUS: list[tuple[type[HostelError], int]] = [
    (MethodNotFoundError, 404),
    (BadArgumentsError, 400),
    (RoutingError, 404),
    (ProviderDataError, 400),
    (PayloadTooLargeError, 413),
    (ProviderCrashedError, 503),
    (ProviderBusyError, 503),
    (ProviderUnavailableError, 503),
    (ProviderStartError, 503),  # a restart that failed while the call waited for it
    (CallTimeoutError, 504),
    (WorkerProtocolError, 502),  # the worker answered in a way hostel cannot use
    (ConfigError, 500),
    (EnvBuildError, 500),
    (RemoteError, 500),
    (HostelError, 500),
]

# What a provider raised, by the name of its type or of its nearest base that has one here (so a subclass of
# ValueError is a 400, as in Llama Stack and OGX), unless it carries an HTTP status of its own. No built-in
# maps to 404: that is hostel's own lookups (provider, method, model), never a provider's KeyError.
_REMOTE_STATUS = {
    "ValueError": 400,
    "TypeError": 400,
    "PermissionError": 403,
    "NotImplementedError": 501,
    "TimeoutError": 504,
    "ConnectionError": 503,
    "pydantic_core._pydantic_core.ValidationError": 400,
}


def headers_for(exc: BaseException) -> dict[str, str]:
    """Headers that tell HTTP clients whether to retry: a busy provider says when; a call that crashed its
    worker says never (the ``openai`` and ``llama-stack-client`` libraries retry any 5xx by default and would
    send the request that killed the worker again and again)."""
    if isinstance(exc, ProviderBusyError):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, ProviderCrashedError):
        return {"x-should-retry": "false"}
    return {}


def status_for(exc: BaseException) -> int:
    """The HTTP status for an error raised by a call."""
    if isinstance(exc, RemoteError) and not isinstance(exc, (MethodNotFoundError, BadArgumentsError)):
        if exc.status_code is not None and 400 <= exc.status_code < 600:
            return exc.status_code
        return next((_REMOTE_STATUS[name] for name in (exc.type_name, *exc.bases) if name in _REMOTE_STATUS), 500)
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(exc: BaseException, *, status: int | None = None) -> dict[str, Any]:
    """``{"error": {"type", "message", "provider_id"}}``: never a remote traceback, nor the list of a provider's
    methods (a client learns what it asked for does not exist, not what does; the log has the rest)."""
    if isinstance(exc, RemoteError) and not isinstance(exc, (MethodNotFoundError, BadArgumentsError)):
        return {"error": {"type": exc.type_name, "message": exc.remote_message, "provider_id": exc.provider_id}}
    provider_id = exc.provider_id if isinstance(exc, HostelError) else None
    message = str(exc).split("; it has: ", 1)[0] if isinstance(exc, MethodNotFoundError) else str(exc)
    return {"error": {"type": type(exc).__name__, "message": message, "provider_id": provider_id}}


def internal_error_body(exc: BaseException) -> dict[str, Any]:
    """The body for an error hostel did not expect: its type, never its traceback (that goes to the log)."""
    return {
        "error": {
            "type": "InternalError",
            "message": f"internal error in hostel ({type(exc).__name__})",
            "provider_id": None,
        }
    }


def bad_request(message: str, *, type_name: str = "BadRequest", provider_id: str | None = None) -> dict[str, Any]:
    """The body for a request hostel refuses before calling anything."""
    return {"error": {"type": type_name, "message": message, "provider_id": provider_id}}
