"""A test harness for provider authors: serve a provider in-process over hostel's real wire.

::

    from hostel_sdk.testing import serve

    async def test_my_provider():
        async with serve(module="my_provider", config={"url": "http://x"}, kind="remote",
                         config_class="my_provider.config.Config",
                         deps={"inference": FakeInference()}) as provider:
            assert await provider.health() == {"status": "OK"}

The provider is built exactly as a hostel worker builds it, by the same loader (module import, config
class, factory with the signature's arguments, model and shield stores, the ``api``'s protocol check and
annotations, the callable methods), served by a ``grpc.aio`` server on a Unix socket, and called through a
client that speaks the same protocol as the host. Arguments and results cross as JSON; provider
exceptions come back as the same built-in exception types. ``deps`` are in-process objects reached
through the same callback service a real host provides.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import grpc

from hostel_sdk import _client, codec
from hostel_sdk import _messages as pb
from hostel_sdk._blobs import NoBlobs
from hostel_sdk._deps import HostClient
from hostel_sdk._exposure import exposed_methods
from hostel_sdk._loader import load_provider, load_validator
from hostel_sdk._service import ProviderService
from hostel_sdk._start import StartRequest
from hostel_sdk._wire import MAX_MESSAGE_BYTES, WorkerStub, channel_options, host_handler, worker_handler

__all__ = ["ProviderClient", "serve"]


class ProviderClient:
    """Calls a served provider: ``await client.method(**kwargs)`` gives the JSON result or an async iterator."""

    def __init__(self, stub: WorkerStub, *, timeout: float | None = None, provider_data: Any = None) -> None:
        self._stub = stub
        self._timeout = timeout
        self._provider_data = provider_data

    def with_options(self, *, timeout: float | None = None, provider_data: Any = None) -> ProviderClient:
        """The same provider, with a per-call timeout and/or provider data."""
        return ProviderClient(self._stub, timeout=timeout, provider_data=provider_data)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` by name."""
        request = pb.CallRequest(
            method=method,
            args_json=codec.dumps(list(args)) if args else b"",
            kwargs_json=codec.dumps(kwargs) if kwargs else b"",
            provider_data_json=codec.dumps(self._provider_data) if self._provider_data is not None else b"",
        )
        return await _client.unary(
            self._stub,
            request,
            timeout=self._timeout,
            errors=_client.PythonErrors(f"{method}()"),
            on_mutations=lambda changed: _client.apply_mutations(changed, args, kwargs),
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self.call(name, *args, **kwargs)

        method.__name__ = name
        return method


class _FakeHost:
    """The callback service of a test: routes ``deps`` calls to in-process objects."""

    def __init__(self, deps: Mapping[str, object]) -> None:
        self._services = {api: ProviderService(obj) for api, obj in deps.items()}

    async def call(
        self, request: pb.HostCallRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CallReply]:
        service = self._services.get(request.api)
        if service is None:
            message = f"the test gave no dependency for API {request.api!r}; pass deps={{{request.api!r}: ...}}"
            yield pb.CallReply(
                error=pb.RemoteError(kind=pb.ERROR_KIND_PERMISSION_DENIED, type_name="PermissionError", message=message)
            )
            return
        inner = pb.CallRequest(
            method=request.method,
            args_json=request.args_json,
            kwargs_json=request.kwargs_json,
            provider_data_json=request.provider_data_json,
        )
        async for reply in service.call(inner, context):
            yield reply


@contextlib.asynccontextmanager
async def serve(
    impl: object | None = None,
    *,
    module: str | None = None,
    config: Mapping[str, Any] | None = None,
    config_class: str | None = None,
    kind: Literal["remote", "inline"] = "inline",
    provider_data_validator: str | None = None,
    deps: Mapping[str, object] | None = None,
    api: str = "",
    expose: Sequence[str] = (),
    lenient_provider_data: bool = False,
) -> AsyncIterator[ProviderClient]:
    """Serve a provider object (``impl``) or build one from ``module`` exactly as a worker does (the same
    loader: config, factory, stores, the ``api``'s protocol check, callable methods); yield a client.
    ``lenient_provider_data``: as a worker the Llama Stack bridge starts (provider data the validator rejects reads
    as none)."""
    if (impl is None) == (module is None):
        raise TypeError("serve() needs exactly one of impl= or module=")
    servers: list[grpc.aio.Server] = []
    host_client: HostClient | None = None
    with tempfile.TemporaryDirectory(prefix="hostel-test-") as tmp:
        options = channel_options(MAX_MESSAGE_BYTES)
        try:
            if deps:
                host_socket = Path(tmp) / "host.sock"
                host_server = grpc.aio.server(options=options)
                host_server.add_generic_rpc_handlers(
                    [host_handler(_FakeHost(deps).call, NoBlobs("the test harness carries no bytes through deps"))]
                )
                host_server.add_insecure_port(f"unix:{host_socket}")
                await host_server.start()
                servers.append(host_server)
                host_client = HostClient(f"unix://{host_socket}", "test", max_message_bytes=MAX_MESSAGE_BYTES)
            if impl is None:
                assert module is not None
                request = StartRequest(
                    provider_id=module, api=api, provider_type=f"{kind}::{module}", kind=kind, module=module,
                    config_class=config_class, config=config or {}, provider_data_validator=provider_data_validator,
                    deps=tuple(deps or ()), expose=tuple(expose),
                )  # fmt: skip
                loaded = await load_provider(request, host_client)
                impl, validator, methods = loaded.impl, loaded.validator, loaded.methods
            else:
                methods = exposed_methods(impl, api=api, expose=expose)
                validator = load_validator(provider_data_validator)
            service = ProviderService(
                impl, provider_data_validator=validator, methods=methods, lenient_provider_data=lenient_provider_data
            )
            socket = Path(tmp) / "worker.sock"
            server = grpc.aio.server(options=options)
            server.add_generic_rpc_handlers([worker_handler(service)])
            server.add_insecure_port(f"unix:{socket}")
            await server.start()
            servers.append(server)
            async with grpc.aio.insecure_channel(f"unix://{socket}", options=options) as channel:
                yield ProviderClient(WorkerStub(channel))
        finally:
            if host_client is not None:
                await host_client.close()
            for running in reversed(servers):
                await running.stop(0)
