from __future__ import annotations

import pytest

from hostel_sdk import _health


@pytest.mark.parametrize("service", ["", "provider", "a" * 300])
def test_request_round_trips(service: str) -> None:
    assert _health.decode_request(_health.encode_request(service)) == service


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_response_round_trips(status: int) -> None:
    assert _health.decode_response(_health.encode_response(status)) == status


def test_encoding_matches_protobuf_wire_format() -> None:
    # HealthCheckRequest{service: "x"} and HealthCheckResponse{status: NOT_SERVING}, as protoc would encode them.
    assert _health.encode_request("x") == b"\x0a\x01x"
    assert _health.encode_response(_health.NOT_SERVING) == b"\x08\x02"


@pytest.mark.parametrize(
    ("report", "healthy"),
    [({"status": "OK"}, True), ({"status": "Error", "message": "down"}, False), ({"status": "Not Implemented"}, True)],
)
def test_llama_stack_health_reports(report: dict[str, str], healthy: bool) -> None:
    assert _health._healthy(report) is healthy
