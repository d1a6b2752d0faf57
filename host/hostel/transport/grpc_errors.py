"""The one place where gRPC failures become hostel errors.

Provider exceptions travel in-band (a ``RemoteError`` reply); a gRPC status therefore always means the
transport or the worker failed. ``STATUS_ERRORS`` maps every ``grpc.StatusCode`` (a test checks none is missing).
"""

from __future__ import annotations

import grpc

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
    """Translate an in-band error reply into ``RemoteError`` (or its subclass) or ``ProviderDataError``."""
    if error.kind == pb.ERROR_KIND_BAD_PROVIDER_DATA:
        return ProviderDataError(f"provider {provider_id!r}: {error.message}", provider_id=provider_id)
    cls = _KIND_ERRORS.get(error.kind, RemoteError)
    return cls(
        provider_id=provider_id,
        method=method,
        type_name=error.type_name,
        message=error.message,
        remote_traceback=error.traceback,
        bases=tuple(error.bases),
        status_code=error.status_code or None,
    )
