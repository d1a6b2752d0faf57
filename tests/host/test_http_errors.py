"""The one table from hostel errors to HTTP statuses: complete, and what each status means."""

from __future__ import annotations

import hostel.errors
from hostel.errors import HostelError, MethodNotFoundError, ProviderBusyError, ProviderCrashedError, RemoteError
from hostel.gateway.http_errors import _STATUS, error_body, headers_for, status_for


def test_every_hostel_error_has_a_status() -> None:
    errors = {
        obj
        for name in hostel.errors.__all__
        if isinstance(obj := getattr(hostel.errors, name), type) and issubclass(obj, HostelError)
    }
    assert errors == {cls for cls, _ in _STATUS}, "add the missing error to _STATUS"


def test_a_providers_own_exception_goes_by_its_type() -> None:
    def remote(type_name: str) -> RemoteError:
        return RemoteError(provider_id="p", method="m", type_name=type_name, message="x")

    assert [status_for(remote(t)) for t in ("ValueError", "PermissionError", "NotImplementedError", "Weird")] == [
        400, 403, 501, 500,
    ]  # fmt: skip


def test_a_subclass_goes_by_its_nearest_known_base_unless_it_carries_a_status() -> None:
    def remote(type_name: str, bases: tuple[str, ...], status: int | None = None) -> RemoteError:
        return RemoteError(
            provider_id="p", method="m", type_name=type_name, message="x", bases=bases, status_code=status
        )

    assert status_for(remote("ogx_api.InvalidParameterError", ("ogx_api.OGXError", "ValueError", "Exception"))) == 400
    assert status_for(remote("pkg.Denied", ("PermissionError", "OSError", "Exception"))) == 403
    assert status_for(remote("ogx_api.FileNotFound", ("ogx_api.OGXError", "Exception"), 404)) == 404
    assert status_for(remote("pkg.Teapot", ("ValueError", "Exception"), 418)) == 418  # its own status wins
    assert status_for(remote("pkg.Odd", ("Exception",), 200)) == 500  # not an error status: ignored
    assert status_for(remote("pkg.Plain", ("Exception", "BaseException"))) == 500


def test_headers_and_bodies_say_what_to_do_and_no_more() -> None:
    busy = ProviderBusyError("busy", provider_id="p")
    crashed = ProviderCrashedError(provider_id="p", exit_code=1, signal=None)
    assert (status_for(busy), headers_for(busy)) == (503, {"Retry-After": "1"})
    assert headers_for(crashed) == {"x-should-retry": "false"}
    missing = MethodNotFoundError(
        provider_id="p", method="m", type_name="AttributeError", message="no callable method 'm'; it has: a, b"
    )
    assert error_body(missing)["error"]["message"] == "provider 'p': no callable method 'm'"
