"""Baseline: a bare grpc.aio server in its own process, with a unary echo and a one-message-per-item stream."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc


def _identity(data: bytes) -> bytes:
    return data


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def sleep(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(float(request))
    return request


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    item = b"x" * 16
    for _ in range(int(request)):
        yield item


async def main(path: str) -> None:
    server = grpc.aio.server()
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            echo, request_deserializer=_identity, response_serializer=_identity
        ),
        "Sleep": grpc.unary_unary_rpc_method_handler(
            sleep, request_deserializer=_identity, response_serializer=_identity
        ),
        "Stream": grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=_identity, response_serializer=_identity
        ),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Raw", handlers)])
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
