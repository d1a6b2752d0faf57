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


def test_a_relayed_error_comes_back_as_it_was_raised() -> None:
    """A host that relays its provider's calls (a shared hub) answers each error so that the caller's host raises
    what its own would have: the provider's exception with its type, bases, status and traceback, a missing method
    as one, bad provider data as such, and hostel's own errors by their class."""
    from hostel.errors import CallTimeoutError, ProviderCrashedError

    raised = RemoteError(
        provider_id="p", method="m", type_name="ogx_api.common.errors.FileNotFoundError", message="gone",
        remote_traceback="Traceback ...", bases=("ValueError", "Exception"), status_code=404,
    )  # fmt: skip
    again = _grpc_errors.from_remote(_grpc_errors.to_remote(raised), provider_id="p", method="m")
    assert type(again) is RemoteError
    assert (again.type_name, again.remote_message, again.bases, again.status_code, again.remote_traceback) == (
        raised.type_name, "gone", raised.bases, 404, "Traceback ...",
    )  # fmt: skip
    missing = MethodNotFoundError(provider_id="p", method="m", type_name="AttributeError", message="no m")
    assert type(_grpc_errors.from_remote(_grpc_errors.to_remote(missing), provider_id="p", method="m")) is (
        MethodNotFoundError
    )
    crashed = ProviderCrashedError(provider_id="p", exit_code=7, signal=None, pid=12)
    back = _grpc_errors.from_remote(_grpc_errors.to_remote(crashed), provider_id="p", method="m")
    assert type(back) is ProviderCrashedError and str(back) == str(crashed) and back.provider_id == "p"
    timeout = _grpc_errors.from_remote(
        _grpc_errors.to_remote(CallTimeoutError("too slow", provider_id="p")), provider_id="p", method="m"
    )
    assert type(timeout) is CallTimeoutError
    data = _grpc_errors.to_remote(ProviderDataError("bad key", provider_id="p"))
    assert type(_grpc_errors.from_remote(data, provider_id="p", method="m")) is ProviderDataError
    # a provider's own exception that merely shares a name with one of hostel's stays the provider's
    spoof = pb.RemoteError(kind=pb.ERROR_KIND_PROVIDER_RAISED, type_name="hostel.errors.ProviderCrashedError")
    assert type(_grpc_errors.from_remote(spoof, provider_id="p", method="m")) is RemoteError
