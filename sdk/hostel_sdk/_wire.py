"""The gRPC wiring of the Worker service, written by hand.

Only message classes are generated (``_proto/worker_pb2.py``); generated ``*_pb2_grpc.py`` files demand a
minimum grpcio version, which would fight the pins of the providers this package shares a venv with.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeAlias

import grpc

from hostel_sdk import _messages as pb

SERVICE = "hostel.v1.Worker"
HOST_SERVICE = "hostel.v1.Host"
TOKEN_METADATA = "hostel-token"
# Initial metadata with which a worker confirms a Worker.Session before the host writes to it.
SESSION_METADATA = "hostel-session"
# The models routing table, read-only and open to every worker: what Llama Stack injects as `model_store`.
MODEL_STORE_API = "hostel.model_store"
# Likewise the shields table: what Llama Stack injects into safety providers as `shield_store`.
SHIELD_STORE_API = "hostel.shield_store"

# Default payload limit per message; larger single arguments or results are refused with a clear error.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_ENVELOPE_SLACK = 64 * 1024


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES, *, local: bool = True) -> list[tuple[str, Any]]:
    """gRPC options shared by the host's channels and the worker's server; ``local``: over a Unix socket."""
    limit = max_message_bytes + _ENVELOPE_SLACK
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        # Unix sockets, or TCP straight to a worker's node: never through an HTTP proxy.
        ("grpc.enable_http_proxy", 0),
    ]
    if local:
        # Without BDP probing a stream's window stays small: on a socket with no latency to hide, growing it
        # only lets a fast sender park tens of MiB of a blob in the receiver while its reader is busy (measured:
        # a 200 MiB file through the bridge grew the worker by 30-66 MiB with it, 12-18 MiB without, at the
        # same MB/s in bench_calls). Over TCP between machines BDP probing is what fills the pipe: kept.
        options.append(("grpc.http2.bdp_probe", 0))
    return options


Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class WorkerServicer(Protocol):
    """What serves the Worker service (``hostel_sdk._service.ProviderService``)."""

    def call(self, request: pb.CallRequest, context: Context) -> AsyncIterator[pb.CallReply]: ...
    async def call_unary(self, request: pb.CallRequest, context: Context) -> pb.CallReply: ...
    def session(
        self, requests: AsyncIterator[pb.SessionRequest], context: Context
    ) -> AsyncIterator[pb.SessionReply]: ...
    def open_stream(self, request: pb.StreamHandle, context: Context) -> AsyncIterator[pb.CallReply]: ...
    async def describe(self, request: pb.DescribeRequest, context: Context) -> pb.DescribeReply: ...
    async def shutdown(self, request: pb.ShutdownRequest, context: Context) -> pb.ShutdownReply: ...
    async def send_blob(self, requests: AsyncIterator[pb.BlobChunk], context: Context) -> pb.BlobReceipt: ...
    def read_blob(self, request: pb.BlobRequest, context: Context) -> AsyncIterator[pb.BlobChunk]: ...


class BlobServicer(Protocol):
    """What serves SendBlob and ReadBlob (on the Worker and on the Host service)."""

    async def send_blob(self, requests: AsyncIterator[pb.BlobChunk], context: Context) -> pb.BlobReceipt: ...
    def read_blob(self, request: pb.BlobRequest, context: Context) -> AsyncIterator[pb.BlobChunk]: ...


def _blob_handlers(servicer: BlobServicer) -> dict[str, grpc.RpcMethodHandler]:
    return {
        "SendBlob": grpc.stream_unary_rpc_method_handler(
            servicer.send_blob,
            request_deserializer=pb.BlobChunk.FromString,
            response_serializer=pb.BlobReceipt.SerializeToString,
        ),
        "ReadBlob": grpc.unary_stream_rpc_method_handler(
            servicer.read_blob,
            request_deserializer=pb.BlobRequest.FromString,
            response_serializer=pb.BlobChunk.SerializeToString,
        ),
    }


def worker_handler(servicer: WorkerServicer, *, sessions: bool = True) -> grpc.GenericRpcHandler:
    """The generic handler that serves the Worker service with ``servicer``'s coroutines (without the
    optional ``Session`` method when ``sessions`` is false, as a worker in another language may)."""
    reply = pb.CallReply.SerializeToString
    methods = {
        "Call": grpc.unary_stream_rpc_method_handler(
            servicer.call, request_deserializer=pb.CallRequest.FromString, response_serializer=reply
        ),
        "CallUnary": grpc.unary_unary_rpc_method_handler(
            servicer.call_unary, request_deserializer=pb.CallRequest.FromString, response_serializer=reply
        ),
        "Session": grpc.stream_stream_rpc_method_handler(
            servicer.session,
            request_deserializer=pb.SessionRequest.FromString,
            response_serializer=pb.SessionReply.SerializeToString,
        ),
        "OpenStream": grpc.unary_stream_rpc_method_handler(
            servicer.open_stream, request_deserializer=pb.StreamHandle.FromString, response_serializer=reply
        ),
        "Describe": grpc.unary_unary_rpc_method_handler(
            servicer.describe,
            request_deserializer=pb.DescribeRequest.FromString,
            response_serializer=pb.DescribeReply.SerializeToString,
        ),
        "Shutdown": grpc.unary_unary_rpc_method_handler(
            servicer.shutdown,
            request_deserializer=pb.ShutdownRequest.FromString,
            response_serializer=pb.ShutdownReply.SerializeToString,
        ),
        **_blob_handlers(servicer),
    }
    if not sessions:
        del methods["Session"]
    return grpc.method_handlers_generic_handler(SERVICE, methods)


HostCallHandler = Callable[[pb.HostCallRequest, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[pb.CallReply]]


def host_handler(call: HostCallHandler, blobs: BlobServicer) -> grpc.GenericRpcHandler:
    """The generic handler that serves the Host (callback) service."""
    return grpc.method_handlers_generic_handler(
        HOST_SERVICE,
        {
            "Call": grpc.unary_stream_rpc_method_handler(
                call,
                request_deserializer=pb.HostCallRequest.FromString,
                response_serializer=pb.CallReply.SerializeToString,
            ),
            **_blob_handlers(blobs),
        },
    )


def _unary(channel: grpc.aio.Channel, path: str, request: Any, reply: Any) -> Any:
    return channel.unary_unary(
        path, request_serializer=request.SerializeToString, response_deserializer=reply.FromString
    )


def _stream(channel: grpc.aio.Channel, path: str, request: Any, reply: Any) -> Any:
    return channel.unary_stream(
        path, request_serializer=request.SerializeToString, response_deserializer=reply.FromString
    )


class HostStub:
    """Client side of the Host service (used by workers for their ``deps``); ``metadata`` goes with every call."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.call = _sent(_stream(channel, f"/{HOST_SERVICE}/Call", pb.HostCallRequest, pb.CallReply), metadata)
        self.send_blob, self.read_blob = (_sent(stub, metadata) for stub in _blob_stubs(channel, HOST_SERVICE))


def _blob_stubs(channel: grpc.aio.Channel, service: str) -> tuple[Any, Any]:
    send = channel.stream_unary(
        f"/{service}/SendBlob",
        request_serializer=pb.BlobChunk.SerializeToString,
        response_deserializer=pb.BlobReceipt.FromString,
    )
    return send, _stream(channel, f"/{service}/ReadBlob", pb.BlobRequest, pb.BlobChunk)


class WithMetadata:
    """A ``grpc.aio`` multicallable that sends ``metadata`` (hostel's token) with every call, besides any the call
    gives: what a client interceptor would add, without grpc.aio's intercepted calls, which pass every message of
    a stream through one more task and queue each way (docs/performance.md)."""

    def __init__(self, multicallable: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._multicallable = multicallable
        self._metadata = metadata

    def __call__(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        return self._multicallable(*args, metadata=(*self._metadata, *(metadata or ())), **kwargs)


def _sent(multicallable: Any, metadata: tuple[tuple[str, str], ...]) -> Any:
    return WithMetadata(multicallable, metadata) if metadata else multicallable


class WorkerStub:
    """Client side of the Worker service on one ``grpc.aio`` channel; ``metadata`` goes with every call."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        def sent(multicallable: Any) -> Any:
            return _sent(multicallable, metadata)

        self.call = sent(_stream(channel, f"/{SERVICE}/Call", pb.CallRequest, pb.CallReply))
        self.call_unary = sent(_unary(channel, f"/{SERVICE}/CallUnary", pb.CallRequest, pb.CallReply))
        self.session = sent(
            channel.stream_stream(
                f"/{SERVICE}/Session",
                request_serializer=pb.SessionRequest.SerializeToString,
                response_deserializer=pb.SessionReply.FromString,
            )
        )
        self.open_stream = sent(_stream(channel, f"/{SERVICE}/OpenStream", pb.StreamHandle, pb.CallReply))
        self.describe = sent(_unary(channel, f"/{SERVICE}/Describe", pb.DescribeRequest, pb.DescribeReply))
        self.shutdown = sent(_unary(channel, f"/{SERVICE}/Shutdown", pb.ShutdownRequest, pb.ShutdownReply))
        self.send_blob, self.read_blob = (sent(stub) for stub in _blob_stubs(channel, SERVICE))


def add_tcp_port(server: grpc.aio.Server, address: str, tls: dict[str, str] | None) -> int:
    """Listen on ``address`` (``host:port``, port 0 for any): plain, or mutual TLS with ``tls``'s ``cert``/``key``
    (PEM text), clients having to present a certificate signed by its ``ca``. Returns the port."""
    if not tls:
        return int(server.add_insecure_port(address))
    credentials = grpc.ssl_server_credentials(
        [(tls["key"].encode(), tls["cert"].encode())], root_certificates=tls["ca"].encode(), require_client_auth=True
    )
    return int(server.add_secure_port(address, credentials))


def tls_channel(target: str, tls: dict[str, str] | None, options: list[tuple[str, Any]]) -> grpc.aio.Channel:
    """A channel to ``target``: plain, or mutual TLS with the same ``cert``/``key``/``ca`` the servers use."""
    if not tls:
        return grpc.aio.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls["ca"].encode(), private_key=tls["key"].encode(), certificate_chain=tls["cert"].encode()
    )
    if tls.get("server_name"):
        options = [*options, ("grpc.ssl_target_name_override", tls["server_name"])]
    return grpc.aio.secure_channel(target, credentials, options=options)


class TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc.aio ships no stubs for it
    """Refuses every RPC that does not carry a valid token in its ``hostel-token`` metadata, before the request
    is read: ``token`` is the one valid token (a worker's server), or a test of it (the host's callback service,
    which knows one per worker)."""

    def __init__(self, token: str | Callable[[bytes], bool]) -> None:
        if isinstance(token, str):
            expected = token.encode()
            self._valid: Callable[[bytes], bool] = lambda given: hmac.compare_digest(given, expected)
        else:
            self._valid = token

        async def deny(_request: Any, context: Context) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong hostel-token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_METADATA:
                given = value.encode() if isinstance(value, str) else value
                if self._valid(given):
                    return await continuation(handler_call_details)
        return self._deny


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that carries ``token`` to a server that checks it (``TokenCheck``); none without a token."""
    return ((TOKEN_METADATA, token),) if token else ()
