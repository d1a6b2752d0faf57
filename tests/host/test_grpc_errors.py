from __future__ import annotations

import grpc

from hostel.errors import BadArgumentsError, MethodNotFoundError, ProviderDataError, RemoteError
from hostel.transport import grpc_errors as _grpc_errors
from hostel_sdk import _messages as pb


def test_every_grpc_status_code_is_mapped() -> None:
    missing = [code for code in grpc.StatusCode if code not in _grpc_errors.STATUS_ERRORS]
    assert missing == []


def test_every_error_kind_is_translated() -> None:
    seen = {}
    for name, number in pb.ERROR_KINDS.items():
        error = pb.RemoteError(kind=number, type_name="ValueError", message="m")
        seen[name] = type(_grpc_errors.from_remote(error, provider_id="p", method="f"))
    assert seen == {
        "ERROR_KIND_UNSPECIFIED": RemoteError,
        "ERROR_KIND_PROVIDER_RAISED": RemoteError,
        "ERROR_KIND_NO_SUCH_METHOD": MethodNotFoundError,
        "ERROR_KIND_BAD_ARGUMENTS": BadArgumentsError,
        "ERROR_KIND_BAD_PROVIDER_DATA": ProviderDataError,
        "ERROR_KIND_BAD_RESULT": RemoteError,
        "ERROR_KIND_PERMISSION_DENIED": RemoteError,  # only the host sends these, to workers
        "ERROR_KIND_HOST_ERROR": RemoteError,
    }
