from __future__ import annotations

import hostel
import hostel.errors
import hostel_sdk


def test_hostel_public_names() -> None:
    assert sorted(hostel.__all__) == sorted(
        [
            "CallTimeoutError", "ConfigError", "EnvBuildError", "Host", "HostelError", "ProviderBusyError",
            "ProviderCrashedError", "ProviderDataError", "ProviderStartError", "ProviderStatus",
            "ProviderUnavailableError", "RemoteError", "RoutingError", "__version__",
        ]
    )  # fmt: skip
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
