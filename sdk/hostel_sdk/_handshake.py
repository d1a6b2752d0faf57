"""The one line a worker prints on stdout when it is ready (or when it could not start).

Documented field by field in docs/protocol.md. Parsed into frozen dataclasses, never by index.
"""

from __future__ import annotations

import json
import signal
import typing
from dataclasses import dataclass
from typing import Literal

# Bump when the handshake line or the Worker service changes incompatibly; the host refuses a
# worker whose version differs and says which side to upgrade.
PROTOCOL_VERSION = 2

# Part of the process contract beside the line: on this signal a worker writes every thread's stack to
# stderr (faulthandler's format); the host asks for them before it kills a hung worker.
STACKS_SIGNAL = signal.SIGUSR1
# Also beside it: a worker on a Unix socket answers, on this socket in the same directory, how many seconds its
# event loop has been blocked (one line, then close), from a thread that runs while the loop is blocked.
LIVENESS_SOCKET = "live.sock"

MAGIC = "hostel"
FAILURE_MAGIC = "hostel-start-failed"

Network = Literal["unix", "tcp"]
Stage = Literal["import", "config", "factory", "protocol", "handshake", "timeout"]
STAGES: tuple[Stage, ...] = typing.get_args(Stage)


class HandshakeError(ValueError):
    """A line that is not a valid handshake."""


@dataclass(frozen=True)
class Handshake:
    """A worker is ready: ``hostel|<protocol>|<network>|<address>|<pid>|<sdk_version>``."""

    protocol: int
    network: Network
    address: str
    pid: int
    sdk_version: str

    def format(self) -> str:
        """The handshake line, without the newline."""
        return "|".join([MAGIC, str(self.protocol), self.network, self.address, str(self.pid), self.sdk_version])

    @property
    def target(self) -> str:
        """The gRPC target to dial."""
        return f"unix://{self.address}" if self.network == "unix" else self.address


@dataclass(frozen=True)
class StartFailure:
    """A worker could not start: ``hostel-start-failed|<protocol>|<stage>|<JSON message>``."""

    protocol: int
    stage: Stage
    message: str

    def format(self) -> str:
        """The failure line, without the newline."""
        return "|".join([FAILURE_MAGIC, str(self.protocol), self.stage, json.dumps(self.message)])


def parse(line: str) -> Handshake | StartFailure:
    """Parse a handshake or failure line; raise ``HandshakeError`` saying what is wrong."""
    line = line.strip()
    head, _, rest = line.partition("|")
    if head == FAILURE_MAGIC:
        version, stage, message = [*rest.split("|", 2), "", ""][:3]
        if stage not in STAGES:
            raise HandshakeError(f"unknown start stage {stage!r} in {line!r}")
        try:
            text = json.loads(message)
        except ValueError:
            text = message
        return StartFailure(protocol=_int(version, "protocol", line), stage=stage, message=str(text))
    if head != MAGIC:
        raise HandshakeError(f"expected a line starting with {MAGIC!r}, got {line[:200]!r}")
    fields = rest.split("|")
    if len(fields) != 5:
        raise HandshakeError(f"expected 6 '|'-separated fields, got {len(fields) + 1} in {line!r}")
    version, network, address, pid, sdk_version = fields
    if network not in ("unix", "tcp"):
        raise HandshakeError(f"unknown network {network!r} in {line!r}")
    return Handshake(
        protocol=_int(version, "protocol", line),
        network=network,  # type: ignore[arg-type]
        address=address,
        pid=_int(pid, "pid", line),
        sdk_version=sdk_version,
    )


def _int(text: str, name: str, line: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HandshakeError(f"field {name} is not an integer in {line!r}") from None
