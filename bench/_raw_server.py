"""Baselines: a bare grpc.aio server in its own process, with a unary echo and a one-message-per-item stream,
plus two floors: hostel's wire messages on that bare server, and an echo of text that must become a str."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from hostel_sdk import _messages as pb
from hostel_sdk import codec


def _identity(data: bytes) -> bytes:
    return data


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def envelope(request: pb.CallRequest, context: Any) -> pb.CallReply:
    """What any worker speaking hostel's messages must do: parse the request, JSON in, JSON out."""
    return pb.CallReply(value_json=codec.dumps(codec.loads(request.kwargs_json)["value"]))


async def echo_text(request: bytes, context: Any) -> bytes:
    """What any provider taking and returning a Python str must pay: UTF-8 to str and back."""
    return codec.encode_text(codec.decode_text(request))


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


async def echo_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    """Each message back on one long-lived stream: the cheapest round trip grpc.aio has (hostel's sessions)."""
    async for request in requests:
        yield request


_MEBIBYTE = b"x" * (1 << 20)


async def mebibytes(request: bytes, context: Any) -> AsyncIterator[bytes]:
    """As many 1 MiB messages as asked: bytes moved one way between two processes, and nothing else."""
    for _ in range(int(request)):
        yield _MEBIBYTE


async def main(path: str) -> None:
    limit = 64 * 1024 * 1024
    server = grpc.aio.server(
        options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)]
    )
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(
            echo, request_deserializer=_identity, response_serializer=_identity
        ),
        "Envelope": grpc.unary_unary_rpc_method_handler(
            envelope, request_deserializer=pb.CallRequest.FromString, response_serializer=pb.CallReply.SerializeToString
        ),
        "EchoText": grpc.unary_unary_rpc_method_handler(
            echo_text, request_deserializer=_identity, response_serializer=_identity
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
        "EchoStream": grpc.stream_stream_rpc_method_handler(
            echo_stream, request_deserializer=_identity, response_serializer=_identity
        ),
        "Mebibytes": grpc.unary_stream_rpc_method_handler(
            mebibytes, request_deserializer=_identity, response_serializer=_identity
        ),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Raw", handlers)])
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
