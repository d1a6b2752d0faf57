"""The standard ``grpc.health.v1.Health/Check`` rpc, hand-encoded.

Its two messages are one field each, so they are written out here rather than generated: generated
code would register ``grpc/health/v1/health.proto`` in protobuf's default pool and collide with a
provider that imports ``grpcio-health-checking``. The worker answers ``""`` from its event loop (a
blocked loop misses the probe) and ``"provider"`` by awaiting the provider's own ``health()``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

logger = logging.getLogger(__name__)

SERVICE = "grpc.health.v1.Health"
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3


def encode_request(service: str) -> bytes:
    """HealthCheckRequest{service}."""
    data = service.encode()
    return (b"\x0a" + _varint(len(data)) + data) if data else b""


def decode_request(data: bytes) -> str:
    """The ``service`` field of a HealthCheckRequest."""
    if not data or data[0] != 0x0A:
        return ""
    length, offset = _read_varint(data, 1)
    return data[offset : offset + length].decode(errors="replace")


def encode_response(status: int) -> bytes:
    """HealthCheckResponse{status}."""
    return b"\x08" + _varint(status) if status else b""


def decode_response(data: bytes) -> int:
    """The ``status`` field of a HealthCheckResponse."""
    if not data or data[0] != 0x08:
        return UNKNOWN
    return _read_varint(data, 1)[0]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while offset < len(data):
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return value, offset


def _healthy(report: Any) -> bool:
    """Llama Stack's ``HealthResponse`` is a dict (or model) with ``status`` "OK" / "Error" / "Not Implemented"."""
    status = report.get("status") if isinstance(report, dict) else getattr(report, "status", None)
    status = getattr(status, "value", status)
    return str(status).upper() not in ("ERROR", "HEALTHSTATUS.ERROR")


class HealthService:
    """Answers Health/Check for one provider object."""

    def __init__(self, impl: object) -> None:
        self._health = getattr(impl, "health", None)

    async def check(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """Health/Check: "" is the worker itself; "provider" asks the provider's health()."""
        service = decode_request(request)
        if service == "":
            return encode_response(SERVING)
        if service != "provider":
            return encode_response(SERVICE_UNKNOWN)
        if not callable(self._health):
            return encode_response(SERVING)
        try:
            report = self._health()
            if asyncio.iscoroutine(report):
                report = await report
        except Exception:
            logger.warning("provider health() raised", exc_info=True)
            return encode_response(NOT_SERVING)
        return encode_response(SERVING if _healthy(report) else NOT_SERVING)


def _identity(data: bytes) -> bytes:
    return data


def health_handler(service: HealthService) -> grpc.GenericRpcHandler:
    """The generic handler serving grpc.health.v1.Health/Check."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                service.check, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )


class HealthStub:
    """Client side: ``await stub.check("", timeout=1.0)`` gives the status number."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        """``metadata`` goes with every check (hostel's token, for a worker that checks it)."""
        self._check = channel.unary_unary(
            f"/{SERVICE}/Check", request_serializer=_identity, response_deserializer=_identity
        )
        self._metadata = metadata

    async def check(self, service: str = "", *, timeout: float) -> int:
        """The serving status of ``service``."""
        return decode_response(await self._check(encode_request(service), timeout=timeout, metadata=self._metadata))
