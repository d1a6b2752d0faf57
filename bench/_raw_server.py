"""Baseline: a bare grpc.aio server in its own process, with a unary echo and a one-message-per-item stream."""

from __future__ import annotations

import asyncio
import sys
import time
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


async def timed_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    n, interval = request.decode().split()
    for _ in range(int(n)):
        await asyncio.sleep(float(interval))
        yield repr(time.time()).encode()


async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    item = b"x" * 16
    for _ in range(int(request)):
        yield item


async def main(path: str) -> None:
    limit = 64 * 1024 * 1024
    server = grpc.aio.server(
        options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    )
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            echo, request_deserializer=_identity, response_serializer=_identity
        ),
        "Sleep": grpc.unary_unary_rpc_method_handler(
            sleep, request_deserializer=_identity, response_serializer=_identity
        ),
        "TimedStream": grpc.unary_stream_rpc_method_handler(
            timed_stream, request_deserializer=_identity, response_serializer=_identity
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
