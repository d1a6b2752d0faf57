"""The one place where gRPC failures become hostel errors.

Provider exceptions travel in-band (a ``RemoteError`` reply); a gRPC status therefore always means the
transport or the worker failed. ``STATUS_ERRORS`` maps every ``grpc.StatusCode`` (a test checks none is missing).
"""

from __future__ import annotations

import grpc

from hostel import errors as _errors
from hostel.errors import (
    BadArgumentsError,
    CallTimeoutError,
    HostelError,
    MethodNotFoundError,
    PayloadTooLargeError,
    ProviderDataError,
    ProviderUnavailableError,
    RemoteError,
    WorkerProtocolError,
)
from hostel_sdk import _messages as pb

STATUS_ERRORS: dict[grpc.StatusCode, type[HostelError]] = {
    grpc.StatusCode.OK: WorkerProtocolError,  # a stream that ended without a reply
    grpc.StatusCode.CANCELLED: ProviderUnavailableError,  # the worker is shutting down
    grpc.StatusCode.UNKNOWN: WorkerProtocolError,
    grpc.StatusCode.INVALID_ARGUMENT: WorkerProtocolError,
    grpc.StatusCode.DEADLINE_EXCEEDED: CallTimeoutError,
    grpc.StatusCode.NOT_FOUND: WorkerProtocolError,
    grpc.StatusCode.ALREADY_EXISTS: WorkerProtocolError,
    grpc.StatusCode.PERMISSION_DENIED: WorkerProtocolError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: PayloadTooLargeError,
    grpc.StatusCode.FAILED_PRECONDITION: WorkerProtocolError,
    grpc.StatusCode.ABORTED: ProviderUnavailableError,
    grpc.StatusCode.OUT_OF_RANGE: WorkerProtocolError,
    grpc.StatusCode.UNIMPLEMENTED: WorkerProtocolError,
    grpc.StatusCode.INTERNAL: WorkerProtocolError,
    grpc.StatusCode.UNAVAILABLE: ProviderUnavailableError,  # upgraded to ProviderCrashedError if the worker died
    grpc.StatusCode.DATA_LOSS: WorkerProtocolError,
    grpc.StatusCode.UNAUTHENTICATED: WorkerProtocolError,
}

_HINTS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.DEADLINE_EXCEEDED: "the call took longer than its timeout; the worker was told to cancel it",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "a message is over the size limit; raise hostel.max_message_mb or send less",
    grpc.StatusCode.UNIMPLEMENTED: "the worker's hostel-sdk does not match the host; rebuild its env (hostel build)",
    grpc.StatusCode.UNAVAILABLE: "the worker is not reachable",
}


def from_status(exc: grpc.aio.AioRpcError, *, provider_id: str, method: str) -> HostelError:
    """Translate a failed RPC into the hostel error its status code maps to."""
    code = exc.code()
    cls = STATUS_ERRORS.get(code, WorkerProtocolError)
    hint = _HINTS.get(code, "")
    detail = exc.details() or code.name
    message = f"call {method}() on provider {provider_id!r} failed: {detail}" + (f" ({hint})" if hint else "")
    return cls(message, provider_id=provider_id)


_KIND_ERRORS: dict[int, type[RemoteError]] = {
    pb.ERROR_KIND_NO_SUCH_METHOD: MethodNotFoundError,
    pb.ERROR_KIND_BAD_ARGUMENTS: BadArgumentsError,
}


def from_remote(error: pb.RemoteError, *, provider_id: str, method: str) -> HostelError:
    """Translate an in-band error reply into ``RemoteError`` (or its subclass), ``ProviderDataError``, or the hostel
    error a host relayed (``to_remote``: a shared host's, ``hostel.bridge.hub``)."""
    if error.kind == pb.ERROR_KIND_BAD_PROVIDER_DATA:
        return ProviderDataError(f"provider {provider_id!r}: {error.message}", provider_id=provider_id)
    relayed = _hostel_error(error, provider_id) if error.kind == pb.ERROR_KIND_HOST_ERROR else None
    if relayed is not None:
        return relayed
    cls = _KIND_ERRORS.get(error.kind, RemoteError)
    return cls(
        provider_id=provider_id,
        method=method,
        type_name=error.type_name,
        message=error.message,
        remote_traceback=error.traceback,
        bases=tuple(error.bases),
        status_code=error.status_code or None,
        attributes_json=error.attributes_json,
    )


_HOSTEL_PREFIX = f"{_errors.__name__}."


def _hostel_error(error: pb.RemoteError, provider_id: str) -> HostelError | None:
    """The hostel error another host named (``hostel.errors.ProviderCrashedError`` ...), with its message; ``None``
    for a name that is not one."""
    name = error.type_name.removeprefix(_HOSTEL_PREFIX)
    cls = getattr(_errors, name, None) if error.type_name.startswith(_HOSTEL_PREFIX) else None
    if not (isinstance(cls, type) and issubclass(cls, HostelError)) or issubclass(cls, RemoteError):
        return None
    made = cls.__new__(cls)
    HostelError.__init__(made, error.message, provider_id=provider_id)
    if isinstance(made, _errors.ProviderCrashedError):  # what it said of the exit is in the message
        made.exit_code = made.signal = made.pid = None
        made.stderr_tail = made.reason = ""
    return made


_REMOTE_KINDS: dict[type[RemoteError], int] = {
    MethodNotFoundError: pb.ERROR_KIND_NO_SUCH_METHOD,
    BadArgumentsError: pb.ERROR_KIND_BAD_ARGUMENTS,
}


def to_remote(exc: HostelError) -> pb.RemoteError:
    """``exc`` as an in-band error reply, for a host that relays calls to its own callers: what a provider raised
    as it raised it (type, bases, status, traceback, and whether the method existed), hostel's own errors by name
    (``from_remote`` turns both back)."""
    if isinstance(exc, RemoteError):
        return pb.RemoteError(
            kind=_REMOTE_KINDS.get(type(exc), pb.ERROR_KIND_PROVIDER_RAISED),
            type_name=exc.type_name,
            message=exc.remote_message,
            traceback=exc.remote_traceback,
            bases=list(exc.bases),
            status_code=exc.status_code or 0,
            attributes_json=exc.attributes_json,
        )
    if isinstance(exc, ProviderDataError):
        return pb.RemoteError(kind=pb.ERROR_KIND_BAD_PROVIDER_DATA, type_name="ProviderDataError", message=str(exc))
    name = _HOSTEL_PREFIX + type(exc).__name__
    return pb.RemoteError(kind=pb.ERROR_KIND_HOST_ERROR, type_name=name, message=str(exc))
