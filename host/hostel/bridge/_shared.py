"""A server process's side of a shared host (``hostel.bridge.hub``): find the hub of a bridged provider, starting it
if this process is the first, and attach to it.

The processes of one server share a hub per bridged provider: its directory is named after the server's main
process (pid and start time) and the provider's hostel config, under ``$TMPDIR/hostel-hub-<uid>/`` (0700). A lock
file there elects the process that starts the hub; the others wait on it (the first start may build the
provider's env), then attach.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from hostel.bridge._deps import ServerApis
from hostel.bridge._server import current
from hostel.config.plan import Plan, load_plan
from hostel.errors import HostelError, ProviderUnavailableError
from hostel.supervise.status import ProviderStatus
from hostel.transport.callbacks import CallbackServer
from hostel.transport.channel import GrpcChannel
from hostel.transport.grpc_errors import from_remote
from hostel_sdk import _messages as pb
from hostel_sdk._llama_stack import protocol_methods

logger = logging.getLogger(__name__)

# Socket and file names in a hub's directory.
WORKER_SOCKET = "hub.sock"
ATTACH_SOCKET = "attach.sock"
HTTP_SOCKET = "http.sock"
# How long the hub waits for its first server process, and lingers after the last one detached (a server
# process that uvicorn replaces attaches again within it).
FIRST_ATTACH_S = 120.0
LINGER_S = 3.0
# How often attached server processes are sent the provider's status.
STATUS_EVERY_S = 1.0


@dataclass(frozen=True)
class HubSpec:
    """What the server process that starts a hub tells it (one JSON line on its stdin)."""

    directory: str
    token: str
    run_config: dict[str, Any] | str  # a bridged provider's run config, or the path of one (the removed APIs')
    api: str
    provider_id: str  # what the hub calls itself in the log: the bridged provider, or the run config's file
    external_apis: list[str]
    methods: list[str]  # what the server calls on the provider (through the Worker service)
    deps_methods: dict[str, list[str]]  # the methods of the server's objects its deps stand for, per API
    watch: tuple[int, float]  # the server's main process: pid and start time
    home: str | None = None
    policy: list[Any] = field(default_factory=list)
    http: bool = False  # serve the removed APIs' routes (hostel.bridge._hub_http)

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> HubSpec:
        """Read ``to_json``'s line."""
        raw = json.loads(line)
        raw["watch"] = tuple(raw["watch"])
        return cls(**raw)


_FAILED = "failed.json"
_SERVER = "server.json"  # the server's main process: pid and start time
_TOKEN = "token"


class BridgedHost(Protocol):
    """What a bridge needs of the host running its provider: a ``hostel.Host``, or a hub's (``SharedHost``)."""

    async def call(
        self, provider_id: str, method: str, args: Any, kwargs: Any, *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Call the provider."""
        ...

    def status(self) -> list[ProviderStatus]:
        """The provider's status."""
        ...

    async def stop(self) -> None:
        """Stop (or let go of) the provider."""
        ...


def in_server_worker() -> bool:
    """Whether this process is one of a multi-process server's workers (uvicorn's ``workers: N`` start each with
    ``multiprocessing``): the default for sharing a host."""
    return multiprocessing.parent_process() is not None


def sharing(setting: bool | None) -> tuple[bool, str]:
    """Whether this process shares a host with its server's others (``shared_host``; ``None``: when it is one of
    several, ``in_server_worker``), and what its requests' keys then begin with (``ServerApis(key_prefix=...)``)."""
    shared = setting if setting is not None else in_server_worker()
    return shared, f"{server_key()}." if shared else ""


def server_key() -> str:
    """This server process's id among its server's processes (the prefix of its requests' keys)."""
    return str(os.getpid())


def _hub_directory(
    run_config: dict[str, Any] | str, home: str | None, policy: list[Any]
) -> tuple[Path, tuple[int, float]]:
    main_pid = os.getppid()
    watch = (main_pid, psutil.Process(main_pid).create_time())
    identity = json.dumps({"server": watch, "config": run_config, "home": home, "policy": policy}, sort_keys=True)
    base = Path(tempfile.gettempdir()) / f"hostel-hub-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid() or base.stat().st_mode & 0o077:
        raise ProviderUnavailableError(f"{base} is not private to this user (mode 0700, owned by it); remove it")
    directory = base / hashlib.sha256(identity.encode()).hexdigest()[:20]
    if not directory.exists():
        _sweep(base)
    directory.mkdir(mode=0o700, exist_ok=True)
    (directory / _SERVER).write_text(json.dumps(watch))
    return directory, watch


def _sweep(base: Path) -> None:
    """Remove the hub directories of servers that are gone (a hub that was killed, or never started, leaves its
    directory behind; one that stops removes it)."""
    for directory in base.iterdir():
        try:
            pid, started = json.loads((directory / _SERVER).read_text())
            gone = abs(psutil.Process(pid).create_time() - started) >= 1.0
        except psutil.NoSuchProcess:
            gone = True
        except (OSError, ValueError, TypeError, psutil.Error):
            continue
        if gone:
            shutil.rmtree(directory, ignore_errors=True)


def method_names(api: str) -> list[str]:
    """What the server calls on a provider of ``api``: its protocol's methods, its routing tables', ``health``."""
    server = current()
    names: dict[str, None] = {"health": None}
    for protocol in (server.private_protocol(api), server.protocol(api)):
        if protocol is not None:
            names.update(dict.fromkeys(protocol_methods(protocol)))
    for own in ("initialize", "shutdown"):
        names.pop(own, None)
    return list(names)


@dataclass(frozen=True)
class HubRequest:
    """What a server process attaches to a hub with (``attach``'s arguments)."""

    api: str
    provider_id: str
    run_config: dict[str, Any] | str
    home: str | None
    policy: list[Any]
    server_apis: ServerApis
    max_message_bytes: int
    methods: list[str]  # what the server calls on the provider (``method_names``)
    key: str  # this server process's id among its server's (``server_key``)
    http: bool = False  # the hub serves the removed APIs' routes


@dataclass
class _Attachment:
    """One attachment to a hub: the provider's channel, this process's callback service, the open connection."""

    channel: GrpcChannel
    callbacks: CallbackServer
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: list[ProviderStatus]
    directory: Path
    token: str

    async def close(self) -> None:
        self.writer.close()
        await self.channel.close()
        await self.callbacks.stop()


class SharedHost:
    """A hub's host as this server process sees it: calls go to the hub, its provider's status comes from it. If
    the hub dies, the calls in flight fail and the next call attaches again (the first server process to call
    starts a new hub, as at the server's start)."""

    def __init__(self, request: HubRequest, attachment: _Attachment) -> None:
        self._request = request
        self._attachment = attachment
        self._status = attachment.status
        self._lost = False
        self._again = asyncio.Lock()
        self._watch = asyncio.ensure_future(self._follow())

    async def _follow(self) -> None:
        """Keep the provider's status as the hub sends it; the hub gone, say so."""
        while line := await self._attachment.reader.readline():
            with contextlib.suppress(ValueError, TypeError):
                self._status = _statuses(line)
        self._lost = True
        gone = "its shared hostel host (hub) is gone"
        self._status = [
            dataclasses.replace(status, state="restarting", pid=None, last_exit=gone) for status in self._status
        ]
        logger.error("provider %s: its shared hostel host (hub) is gone; the next call starts another",
                     self._request.provider_id)  # fmt: skip

    async def ensure(self) -> None:
        """Attach again if the hub is gone (the first server process to get here starts another)."""
        if self._lost:
            await self._reattach()

    @property
    def key(self) -> str:
        """This server process's id among its server's."""
        return self._request.key

    def http_address(self) -> tuple[Path, str]:
        """The hub's HTTP socket and token (a hub serving the removed APIs' routes)."""
        return self._attachment.directory / HTTP_SOCKET, self._attachment.token

    async def _reattach(self) -> None:
        async with self._again:
            if not self._lost:
                return
            await self._attachment.close()
            self._attachment = await _attach(self._request)
            self._status, self._lost = self._attachment.status, False
            self._watch = asyncio.ensure_future(self._follow())

    async def call(
        self, provider_id: str, method: str, args: Any, kwargs: Any, *, timeout: float | None, provider_data: Any
    ) -> Any:
        """Call the provider through the hub."""
        await self.ensure()
        channel = self._attachment.channel
        return await channel.call(method, args, kwargs, timeout=timeout, provider_data=provider_data)

    def status(self) -> list[ProviderStatus]:
        """The providers' status as the hub last sent it (every second)."""
        return self._status

    async def stop(self) -> None:
        """Detach: the hub stops the provider when the last server process has."""
        self._watch.cancel()
        await self._attachment.close()


async def attach(request: HubRequest) -> SharedHost:
    """Attach to the hub of this provider for this server, starting it if there is none (``HostelError``: it did
    not start, as ``Host.start`` would say)."""
    return SharedHost(request, await _attach(request))


async def _attach(request: HubRequest) -> _Attachment:
    directory, watch = _hub_directory(request.run_config, request.home, request.policy)
    lock = os.open(directory / "lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)  # the first may be building the env: minutes
        connection = await _connect(directory)
        if connection is None:
            spec = HubSpec(
                directory=str(directory),
                token=secrets.token_urlsafe(32),
                run_config=request.run_config,
                api=request.api,
                provider_id=request.provider_id,
                external_apis=sorted(request.server_apis.apis),
                methods=request.methods,
                deps_methods=request.server_apis.methods(),
                watch=watch,
                home=request.home,
                policy=request.policy,
                http=request.http,
            )
            await _start_hub(spec)
            connection = await _connect(directory)
            if connection is None:
                raise ProviderUnavailableError(
                    f"the hostel hub of {request.provider_id!r} started but cannot be reached",
                    provider_id=request.provider_id,
                )
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    token = (directory / _TOKEN).read_text()
    callbacks = CallbackServer(
        request.server_apis, directory / f"cb-{request.key}.sock", max_message_bytes=request.max_message_bytes
    )
    await callbacks.start()
    reader, writer = connection
    hello = {
        "token": token,
        "key": request.key,
        "callback": f"unix://{callbacks.socket_path}",
        "callback_token": callbacks.grant("hub", request.server_apis.apis),
    }
    writer.write(json.dumps(hello).encode() + b"\n")
    first = await reader.readline()
    if not first:
        writer.close()
        await callbacks.stop()
        raise ProviderUnavailableError(
            f"the hostel hub of {request.provider_id!r} refused this server process", provider_id=request.provider_id
        )
    status = _statuses(first)
    channel = GrpcChannel(
        request.provider_id,
        f"unix:{directory / WORKER_SOCKET}",
        max_message_bytes=request.max_message_bytes,
        token=token,
    )
    logger.info("hostel: server process %s attached to the shared host of %s", request.key, request.provider_id)
    return _Attachment(channel, callbacks, reader, writer, status, directory, token)


def _statuses(line: bytes) -> list[ProviderStatus]:
    return [ProviderStatus(**{**fields, "replicas": ()}) for fields in json.loads(line)]


async def _connect(directory: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.open_unix_connection(str(directory / ATTACH_SOCKET))
    except OSError:
        return None


async def _start_hub(spec: HubSpec) -> None:
    """Start the hub in a session of its own and wait until it serves (or says why not; that stays said for the
    server's other processes, which would fail the same way)."""
    directory = Path(spec.directory)
    failed = directory / _FAILED
    if failed.exists():
        _raise(json.loads(failed.read_text()), spec.provider_id)
    token_file = directory / _TOKEN
    token_file.touch(mode=0o600)
    token_file.write_text(spec.token)
    process = subprocess.Popen(
        [sys.executable, "-m", "hostel.bridge.hub"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True, text=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(spec.to_json() + "\n")
    process.stdin.close()
    line = await asyncio.to_thread(process.stdout.readline)
    process.stdout.close()
    try:
        outcome = json.loads(line) if line else {"error": f"the hub exited with code {process.wait()} before it served"}
    except ValueError:
        outcome = {"error": f"the hub said {line!r}"}
    if not outcome.get("ready"):
        await asyncio.to_thread(process.wait)
        failed.write_text(json.dumps(outcome))
        _raise(outcome, spec.provider_id)
    # Reaped when it exits, while this process lives (it outlives this process otherwise, and init reaps it).
    threading.Thread(target=process.wait, name=f"hostel-hub-{spec.provider_id}", daemon=True).start()


def _raise(outcome: dict[str, Any], provider_id: str) -> None:
    type_name = f"hostel.errors.{outcome.get('type', 'ProviderUnavailableError')}"
    error = pb.RemoteError(kind=pb.ERROR_KIND_HOST_ERROR, type_name=type_name, message=str(outcome.get("error")))
    raised: HostelError = from_remote(error, provider_id=provider_id, method="start")
    raise raised


def bridge_plan(
    raw: dict[str, Any] | str,
    external_apis: frozenset[str],
    policy: list[Any],
    deps_methods: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """The hostel plan of a bridged provider's run config (or of the run config at a path): its workers get the
    server's access ``policy``, know the methods of the server's objects their deps stand for (``deps_methods``,
    ``ServerApis.methods``), and read provider data as the server's own providers do (what their validator
    rejects, as none)."""
    plan = load_plan(Path(raw) if isinstance(raw, str) else raw, external_apis=external_apis)
    changes: dict[str, Any] = {"lenient_provider_data": True}
    if policy:
        changes["access_policy"] = tuple(policy)
    if deps_methods is not None:
        changes["dependency_methods"] = {api: tuple(names) for api, names in deps_methods.items()}
    return dataclasses.replace(plan, providers=tuple(p.with_worker(**changes) for p in plan.providers))


def show_hostel_logs() -> None:
    """Make hostel's progress (env builds, starts, restarts, provider stderr) reach the server's log."""
    hostel_logger = logging.getLogger("hostel")
    if hostel_logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    hostel_logger.addHandler(handler)
    hostel_logger.setLevel(logging.INFO)
    hostel_logger.propagate = False
