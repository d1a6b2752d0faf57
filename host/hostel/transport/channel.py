"""The narrow seam between the host's policy and a worker: ``call`` (a value or a stream), ``check_health``,
``request_shutdown`` and ``close``.

``GrpcChannel`` speaks the Worker service over a Unix socket (or TCP, for remote workers); tests may
substitute any object with the same four methods (``tests/fakes.py`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import grpc

from hostel import _telemetry
from hostel.errors import CallTimeoutError, HostelError, PayloadTooLargeError, WorkerProtocolError
from hostel.transport import grpc_errors as _grpc_errors
from hostel.transport.session import CallExpired, Session
from hostel_sdk import _blobs, _client, codec
from hostel_sdk import _messages as pb
from hostel_sdk._health import HealthStub
from hostel_sdk._wire import WorkerStub, channel_options, tls_channel, token_metadata

logger = logging.getLogger(__name__)

# Calls whose request is smaller than this travel on the worker's session; a bigger one gets an RPC of its
# own, so that it holds up no other call on the shared stream.
SESSION_MAX_REQUEST_BYTES = codec.LONG_TEXT


class Channel(Protocol):
    """How the host reaches one worker."""

    target: str  # where: ``unix:PATH``, or ``host:port`` for a worker on TCP

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Call ``method``; return its JSON value, or an async iterator of items for a stream."""
        ...

    async def check_health(self, timeout: float) -> bool:
        """The liveness probe: whether the worker answered within ``timeout`` seconds."""
        ...

    async def request_shutdown(self, grace_s: float, timeout: float) -> None:
        """Ask the worker to stop within ``grace_s`` (whether it answers or not)."""
        ...

    async def close(self, grace: float | None = None) -> None:
        """Release the connection."""
        ...


class _HostErrors:
    """Failures of one call as hostel errors (the one place gRPC statuses are translated: ``_grpc_errors``)."""

    def __init__(self, channel: GrpcChannel, method: str) -> None:
        self._channel = channel
        self._method = method

    def remote(self, error: pb.RemoteError) -> BaseException:
        return _grpc_errors.from_remote(error, provider_id=self._channel.provider_id, method=self._method)

    async def status(self, error: grpc.aio.AioRpcError) -> BaseException:
        translated = _grpc_errors.from_status(error, provider_id=self._channel.provider_id, method=self._method)
        if self._channel.explain is not None:
            translated = await self._channel.explain(translated)
        return translated

    def protocol(self, message: str) -> BaseException:
        pid = self._channel.provider_id
        return WorkerProtocolError(f"provider {pid!r}, {self._method}(): {message}", provider_id=pid)

    def timeout(self, seconds: float) -> BaseException:
        pid = self._channel.provider_id
        return CallTimeoutError(
            f"call {self._method}() on provider {pid!r} timed out after {seconds:g}s; the worker was told to cancel it",
            provider_id=pid,
        )


class GrpcChannel:
    """A ``Channel`` over ``grpc.aio`` to a worker's socket."""

    def __init__(
        self,
        provider_id: str,
        target: str,
        *,
        max_message_bytes: int,
        explain: Callable[[HostelError], Awaitable[HostelError]] | None = None,
        token: str | None = None,
        tls: dict[str, str] | None = None,
    ) -> None:
        """``explain`` may replace a transport error with a better one (e.g. the worker crashed).

        ``token`` (sent with every call) and ``tls`` (mutual TLS, PEM text) are for workers reached over TCP.
        """
        self.provider_id = provider_id
        self.target = target
        self.explain = explain
        self._max = max_message_bytes
        self._channel = tls_channel(target, tls, channel_options(max_message_bytes, local=target.startswith("unix:")))
        metadata = token_metadata(token)
        self.stub = WorkerStub(self._channel, metadata)
        self.health = HealthStub(self._channel, metadata)
        self._blobs = _blobs.Transfer(self.stub, translate=_HostErrors(self, "ReadBlob").status)
        self._session: Session | None = None
        self._sessions = True  # until the worker turns out not to serve Worker.Session

    def _encode(self, what: str, value: Any, method: str, extra: int = 0, blobs: _blobs.Outbox | None = None) -> bytes:
        """``value`` as JSON (a model's fields that were set; bytes and files as markers ``blobs`` keeps), refused
        if it and ``extra`` bytes sent beside it pass the message limit; ``TypeError`` naming what cannot be encoded."""
        data = codec.dumps(value, blobs=blobs, as_arguments=True) if value else b""
        size = len(data) + extra
        if size > self._max:
            raise PayloadTooLargeError(
                f"{what} of {method}() for provider {self.provider_id!r} is {size / 2**20:.1f} MiB, over the "
                f"{self._max / 2**20:.0f} MiB limit; raise hostel.max_message_mb or send less",
                provider_id=self.provider_id,
            )
        return data

    async def call(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Call ``method`` on the worker; a value, or a ``hostel_sdk._client.ReplyStream`` for a streamed result."""
        plain, text = codec.split_text(dict(kwargs)) if kwargs else ({}, {})
        outbox = self._blobs.outbox()
        request = pb.CallRequest(
            method=method,
            args_json=self._encode("positional arguments", list(args), method, blobs=outbox) if args else b"",
            kwargs_json=self._encode("arguments", plain, method, sum(map(len, text.values())), blobs=outbox),
            provider_data_json=codec.dumps(provider_data) if provider_data is not None else b"",
            kwargs_text=text,
            trace_context=_telemetry.inject(),
        )
        errors = _HostErrors(self, method)
        pushes = self._blobs.push(outbox) if outbox.sources else None
        try:
            return await self._call(request, method, args, kwargs, timeout=timeout, errors=errors, text=bool(text))
        finally:
            if pushes is not None:
                pushes.end()

    async def _call(
        self,
        request: pb.CallRequest,
        method: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        timeout: float | None,
        errors: _HostErrors,
        text: bool,
    ) -> Any:
        def on_mutations(changed: Any) -> None:
            _client.apply_mutations(changed, args, kwargs)

        size = len(request.args_json) + len(request.kwargs_json) + len(request.provider_data_json)
        if self._sessions and not text and size < SESSION_MAX_REQUEST_BYTES:
            deadline = None if timeout is None else time.monotonic() + timeout
            request.timeout_s = timeout or 0.0
            try:
                reply = await self._open_session().call(request, timeout)
            except CallExpired:
                raise errors.timeout(timeout or 0.0) from None
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise await errors.status(exc) from None
                # A worker without Worker.Session (one written in another language, say): CallUnary from now on.
                logger.info("provider %s: its worker does not serve Worker.Session; using CallUnary", self.provider_id)
                self._sessions = False
            else:
                return _client.reply_value(
                    self.stub,
                    reply,
                    deadline=deadline,
                    errors=errors,
                    on_mutations=on_mutations,
                    open_blobs=self._blobs.values,
                )
        return await _client.unary(
            self.stub,
            request,
            timeout=timeout,
            errors=errors,
            on_mutations=on_mutations,
            open_blobs=self._blobs.values,
        )

    async def check_health(self, timeout: float) -> bool:
        """``grpc.health.v1`` Check for the worker itself (answered from its event loop)."""
        try:
            await self.health.check("", timeout=timeout)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError):
            return False
        return True

    async def request_shutdown(self, grace_s: float, timeout: float) -> None:
        """Worker.Shutdown; a worker that does not answer is the caller's to kill."""
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.TimeoutError):
            await self.stub.shutdown(pb.ShutdownRequest(grace_s=grace_s), timeout=timeout)

    def _open_session(self) -> Session:
        """The open session, or a new one when there is none or it failed (the next call after a failure
        tries again, as its own RPC would)."""
        if self._session is None or self._session.failure is not None:
            self._session = Session(self.stub)
        return self._session

    async def close(self, grace: float | None = None) -> None:
        """Close the gRPC channel; with ``grace``, in-flight calls get that long to finish first."""
        if self._session is not None:
            await self._session.close(grace)
        await self._channel.close(grace)
