from __future__ import annotations

import hostel
import hostel.errors
import hostel_sdk


def test_hostel_public_names() -> None:
    assert sorted(hostel.__all__) == sorted(
        [
            "BadArgumentsError", "CallTimeoutError", "ConfigError", "EnvBuildError", "Host", "HostelError",
            "MethodNotFoundError", "PayloadTooLargeError", "ProviderBusyError", "ProviderCrashedError",
            "ProviderDataError", "ProviderStartError", "ProviderStatus", "ProviderUnavailableError", "ReloadReport",
            "RemoteError", "RoutingError", "Usage", "WorkerProtocolError", "__version__",
        ]
    )  # fmt: skip
    errors = {name for name in hostel.errors.__all__ if name != "Problem"}
    assert errors <= set(hostel.__all__), "every exception class is exported from hostel"
    for name in hostel.__all__:
        assert hasattr(hostel, name)


def test_every_error_is_a_hostel_error() -> None:
    for name in hostel.errors.__all__:
        obj = getattr(hostel.errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, hostel.errors.HostelError), name


def test_sdk_public_names() -> None:
    assert sorted(hostel_sdk.__all__) == ["Api", "__version__", "request_provider_data"]
    assert hostel_sdk.Api.inference == "inference"
    assert {hostel_sdk.Api.inference: 1}["inference"] == 1
