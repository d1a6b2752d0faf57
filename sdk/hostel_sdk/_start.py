"""The start request: the one JSON line the host writes on a worker's stdin (docs/protocol.md, field by field).

Both halves of the contract read this one frozen dataclass: the host builds it (each launcher derives its
variant with ``dataclasses.replace``), the worker parses it. Defaults are defined here, once. Secrets (the
provider's config, tokens, TLS keys) travel only in it, never on argv or in the environment.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hostel_sdk._handshake import PROTOCOL_VERSION
from hostel_sdk._wire import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Listen:
    """Serve on TCP instead of the Unix socket (workers on other machines): bind ``host``, tell the host
    ``advertise`` (default ``host``), on ``port`` (0: any)."""

    host: str
    advertise: str | None = None
    port: int = 0


@dataclass(frozen=True)
class StartRequest:
    """What a worker is told to start. Unknown keys are ignored (a newer host may send more)."""

    provider_id: str
    api: str
    provider_type: str
    kind: Literal["remote", "inline"]
    module: str
    config_class: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    provider_data_validator: str | None = None
    deps: tuple[str, ...] = ()  # the API names the provider's deps hold
    # The methods of each of them, where the host knows what answers them (a server's routers, through the bridge):
    # the deps offer those and no other attribute. None: any name is a method.
    deps_methods: Mapping[str, list[str]] | None = None
    # Provider data the provider's validator rejects reaches it as none instead of failing the call (a Llama Stack
    # server's own providers read it so; the bridge asks for it).
    lenient_provider_data: bool = False
    # What an OGX / Llama Stack server gives its providers besides config and deps: its storage backends
    # (``{"backends": {name: config}, "tenancy": ...}``, registered before the factory runs) and its access
    # policy (a list of access rules, for a factory that takes ``policy``).
    storage: Mapping[str, Any] | None = None
    policy: tuple[Any, ...] = ()
    expose: tuple[str, ...] = ()  # callable besides the API protocol's methods
    protocol: int = PROTOCOL_VERSION
    # Where to serve, and how the host is reached and checks the worker.
    socket_path: str | None = None
    listen: Listen | None = None
    host_socket: str | None = None
    host_target: str | None = None  # a gRPC target for callbacks, instead of ``host_socket``
    token: str = ""  # this worker's callback token
    server_token: str | None = None  # what every RPC to this worker must carry
    tls: Mapping[str, str] | None = None  # PEM ``cert``, ``key``, ``ca``; ``server_name`` of the host
    # The process itself.
    host_pid: int | None = None  # exit if the parent is not this process (None: the parent is not the host)
    # Die with the parent (PR_SET_PDEATHSIG); false when the parent is a zygote, which may go first.
    parent_death: bool = True
    log_level: str = "WARNING"
    max_message_bytes: int = MAX_MESSAGE_BYTES
    grace_s: float = 5.0
    retain_freed_bytes: int = 0
    limits: Mapping[str, int] = field(default_factory=dict)  # open_files, processes, cpu_seconds (rlimits)
    sandbox: Mapping[str, Any] | None = None  # ``read``, ``write``, ``connect_ports`` (hostel_sdk._sandbox)
    # Set when the host traces: ``resource`` attributes and ``instrument`` (hostel_sdk._telemetry).
    telemetry: Mapping[str, Any] | None = None

    def to_json(self) -> bytes:
        """The line to write (without its newline)."""
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, line: bytes | str) -> StartRequest:
        """Parse a start request; ``ValueError`` naming what is wrong with it."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("the start request is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if isinstance(values.get("listen"), dict):
            values["listen"] = Listen(**values["listen"])
        for name in ("deps", "expose", "policy"):
            values[name] = tuple(values.get(name) or ())
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"the start request lacks a field: {exc}") from None
