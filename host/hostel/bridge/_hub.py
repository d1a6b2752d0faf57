"""One hostel host for every process of a multi-worker server: the hub.

A Llama Stack or OGX server with ``workers: N`` runs N processes, and each builds its providers, bridged ones
too: without a hub every bridged provider would run N times (N times the memory, N registries that diverge).
Instead the first server process to build a bridged provider starts a hub (``python -m hostel.bridge.hub``), a
process in a session of its own, so that no server process's death ends it. The hub runs the hostel host of that
provider and serves it over the Worker protocol on a private Unix socket; every server process, the first too,
attaches to it (``hostel.bridge._shared``). The hub

- forwards each call to its host with the caller's provider data (and so its user), deadline and blobs, and
  passes results, streams, blobs and errors back as they came (``RelayedError``: types, statuses, whether the method
  exists, hostel's own errors by name);
- routes the provider's ``deps`` calls back to the server process whose request started them (the request's key
  begins with that process's id: ``ServerApis(key_prefix=...)``), or to any attached one when it is gone;
- stops its host and exits when the last server process has detached (the server shut down), when the server's
  main process is gone, or when nobody attached within ``FIRST_ATTACH_S`` of its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from hostel.bridge._shared import (
    ATTACH_SOCKET,
    FIRST_ATTACH_S,
    HTTP_SOCKET,
    LINGER_S,
    STATUS_EVERY_S,
    WORKER_SOCKET,
    HubSpec,
    bridge_plan,
    show_hostel_logs,
)
from hostel.config.plan import Plan
from hostel.errors import HostelError, ProviderUnavailableError
from hostel.host import Host
from hostel.transport.callbacks import NamedMethods
from hostel.transport.grpc_errors import to_remote
from hostel_sdk import codec
from hostel_sdk._blobs import Blob
from hostel_sdk._context import RequestContext, current_request
from hostel_sdk._deps import HostClient
from hostel_sdk._llama_stack import SERVER_CONTEXT_KEY
from hostel_sdk._service import ProviderService, RelayedError
from hostel_sdk._wire import MODEL_STORE_API, SHIELD_STORE_API, TokenCheck, channel_options, worker_handler

logger = logging.getLogger(__name__)


@dataclass
class Attached:
    """One server process attached to the hub: how to call its APIs back, and how many calls it made."""

    key: str
    client: HostClient
    calls: int = 0


class HubApis:
    """``ExternalApis`` of the hub's host: the APIs of the attached server processes, reached through each one's
    callback socket."""

    def __init__(self, apis: frozenset[str]) -> None:
        self.apis = apis
        self.attached: dict[str, Attached] = {}

    def count(self, provider_data: Any) -> None:
        """Count a call for the server process whose request it serves."""
        self.count_for(_origin(provider_data))

    def count_for(self, key: str) -> None:
        """Count a call for the server process ``key``."""
        attached = self.attached.get(key)
        if attached is not None:
            attached.calls += 1

    def pick(self, provider_data: Any) -> Attached:
        """The server process a call belongs to; another if it is gone."""
        attached = self.attached.get(_origin(provider_data))
        if attached is None and self.attached:  # the request's server process is gone: another serves it
            attached = next(reversed(self.attached.values()))
        if attached is None:
            raise ProviderUnavailableError("no server process is attached to this hostel hub to serve the call")
        return attached

    def api(self, api: str, *, timeout: float | None = None, provider_data: Any = None) -> _ServerProcessApi:
        """The API ``api`` of the server process the call belongs to."""
        return _ServerProcessApi(self, api, timeout, provider_data)

    async def model_record(self, model_id: str) -> dict[str, Any] | None:
        """The server's model registry entry, as JSON fields."""
        return await self._lookup(MODEL_STORE_API, "get_model", model_id)

    async def shield_record(self, shield_id: str) -> dict[str, Any] | None:
        """The server's shield registry entry, as JSON fields."""
        return await self._lookup(SHIELD_STORE_API, "get_shield", shield_id)

    async def _lookup(self, store: str, method: str, identifier: str) -> dict[str, Any] | None:
        try:
            found = await self.pick(None).client.call_in(RequestContext(), store, method, (identifier,), {})
        except Exception:  # noqa: BLE001 - not found (the server says so with an exception), or nobody to ask
            return None
        return found if isinstance(found, dict) else None


def _origin(provider_data: Any) -> str:
    """The id of the server process a call's request came from (its key's prefix)."""
    key = provider_data.get(SERVER_CONTEXT_KEY) if isinstance(provider_data, dict) else None
    return str(key).partition(".")[0] if key else ""


class _ServerProcessApi(NamedMethods):
    __slots__ = ("_api", "_hub", "_provider_data", "_timeout")

    def __init__(self, hub: HubApis, api: str, timeout: float | None, provider_data: Any) -> None:
        self._hub = hub
        self._api = api
        self._timeout = timeout
        self._provider_data = provider_data

    async def invoke(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call ``method`` of this API in the server process the call belongs to."""
        data = self._provider_data
        request = RequestContext(
            raw_provider_data=codec.dumps(data) if data is not None else b"",
            deadline=None if self._timeout is None else time.monotonic() + self._timeout,
        )
        return await self._hub.pick(data).client.call_in(request, self._api, method, tuple(args), dict(kwargs))


def forwarders(host: Host, provider_id: str, names: Sequence[str], hub: HubApis) -> dict[str, Callable[..., Any]]:
    """A method per name, each calling the provider through ``host`` with the caller's provider data and deadline,
    and passing the result or error on as it came."""

    def forwarder(name: str) -> Callable[..., Any]:
        async def forward(*args: Any, **kwargs: Any) -> Any:
            request = current_request()
            raw = request.raw_provider_data
            provider_data = codec.loads(raw) if raw else None
            hub.count(provider_data)
            try:
                result = await host.call(
                    provider_id, name, args, kwargs, timeout=request.time_remaining(), provider_data=provider_data
                )
            except HostelError as exc:
                raise RelayedError(to_remote(exc)) from None
            if isinstance(result, Blob):
                return _blob(result)
            if hasattr(result, "__aiter__"):
                return _relayed(result)
            return result

        forward.__name__ = name
        return forward

    return {name: forwarder(name) for name in names}


def _blob(blob: Blob) -> Any:
    """A returned blob, sent on: a response as a response (its status, headers and media type), else as a file."""
    if blob.kind != "response":
        return blob
    from starlette.responses import StreamingResponse

    return StreamingResponse(
        blob.views(), status_code=blob.status_code, headers=dict(blob.headers), media_type=blob.media_type
    )


async def _relayed(stream: Any) -> AsyncIterator[Any]:
    try:
        async for item in stream:
            yield item
    except HostelError as exc:
        raise RelayedError(to_remote(exc)) from None
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class Attachments:
    """The hub's attach socket: one connection per server process, open while it is attached."""

    def __init__(self, spec: HubSpec, hub: HubApis, host: Host, max_message_bytes: int) -> None:
        self._spec = spec
        self._hub = hub
        self._host = host
        self._max = max_message_bytes
        self._server: asyncio.AbstractServer | None = None
        self.ever_attached = False

    async def start(self, path: Path) -> None:
        """Listen on ``path``."""
        self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        path.chmod(0o600)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def _status(self) -> bytes:
        return json.dumps([status.to_dict() for status in self._host.status()]).encode() + b"\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = json.loads(await reader.readline() or b"null")
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or not hmac.compare_digest(str(hello.get("token", "")), self._spec.token):
            writer.close()
            return
        key = str(hello["key"])
        client = HostClient(str(hello["callback"]), str(hello["callback_token"]), max_message_bytes=self._max)
        attached = self._hub.attached[key] = Attached(key, client)
        self.ever_attached = True
        logger.info("hostel hub %s: server process %s attached", self._spec.provider_id, key)
        try:
            writer.write(self._status())
            ended = asyncio.ensure_future(reader.read())  # a server process says nothing more; EOF: it is gone
            while not ended.done():
                await asyncio.wait([ended], timeout=STATUS_EVERY_S)
                writer.write(self._status())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if self._hub.attached.get(key) is attached:
                del self._hub.attached[key]
            logger.info(
                "hostel hub %s: server process %s detached (%d calls); %d still attached",
                self._spec.provider_id, key, attached.calls, len(self._hub.attached),
            )  # fmt: skip
            await client.close()
            writer.close()


def _alive(pid: int, started: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except psutil.Error:
        return False


async def _until_done(spec: HubSpec, attachments: Attachments, hub: HubApis, stop: asyncio.Event) -> str:
    """Wait for a reason to stop; the reason."""
    began = time.monotonic()
    empty_since: float | None = None
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        if not _alive(*spec.watch):
            return f"the server's main process {spec.watch[0]} is gone"
        if hub.attached:
            empty_since = None
        elif attachments.ever_attached:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= LINGER_S:
                return "the last server process detached"
        elif time.monotonic() - began >= FIRST_ATTACH_S:
            return f"no server process attached within {FIRST_ATTACH_S:g} s"
    return "told to stop"


async def serve(spec: HubSpec, plan: Plan, report: Callable[[dict[str, Any]], None]) -> int:
    """Start the provider, serve it to the server's processes until none is left, stop it."""
    hub = HubApis(frozenset(spec.external_apis))
    host = Host(plan, home=Path(spec.home) if spec.home else None, external=hub)
    try:
        await host.start()
    except HostelError as exc:
        await host.stop()
        report({"error": str(exc), "type": type(exc).__name__})
        return 1
    max_bytes = plan.settings.max_message_mb * 2**20
    service = ProviderService(object(), methods=forwarders(host, spec.provider_id, spec.methods, hub))
    server = grpc.aio.server(options=channel_options(max_bytes, local=True), interceptors=[TokenCheck(spec.token)])
    server.add_generic_rpc_handlers([worker_handler(service)])
    directory = Path(spec.directory)
    server.add_insecure_port(f"unix:{directory / WORKER_SOCKET}")
    await server.start()
    stop_http = None
    if spec.http:
        from hostel.bridge._hub_http import serve_routes  # the removed APIs' routes: hostel's gateway

        stop_http = await serve_routes(host, max_bytes, directory / HTTP_SOCKET, spec.token, hub.count_for)
    attachments = Attachments(spec, hub, host, max_bytes)
    await attachments.start(directory / ATTACH_SOCKET)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pids = ", ".join(str(status.pid) for status in host.status())
    logger.info("hostel hub %s: serving [pid %s] for the server's processes", spec.provider_id, pids)
    report({"ready": True})
    try:
        reason = await _until_done(spec, attachments, hub, stop)
        logger.info("hostel hub %s: stopping: %s", spec.provider_id, reason)
    finally:
        await attachments.close()
        if stop_http is not None:
            await stop_http()
        service.drain()
        await server.stop(5)
        await host.stop()
        shutil.rmtree(directory, ignore_errors=True)  # its sockets, token, lock: the next start makes its own
    return 0


def main() -> int:
    """The hub process (``python -m hostel.bridge.hub``): the spec on stdin, one JSON line of outcome on stdout."""
    show_hostel_logs()
    spec = HubSpec.from_json(sys.stdin.readline())
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what the provider's host prints goes to the server's log

    def report(outcome: dict[str, Any]) -> None:
        out.write(json.dumps(outcome) + "\n")
        out.close()

    plan = bridge_plan(spec.run_config, frozenset(spec.external_apis), spec.policy, spec.deps_methods)
    return asyncio.run(serve(spec, plan, report))
