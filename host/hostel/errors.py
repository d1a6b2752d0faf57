"""Every error hostel raises. Each carries the provider id where one applies.

::

    HostelError
    ├── ConfigError                 bad run config or spec; .problems lists every one
    ├── EnvBuildError               a provider's virtualenv could not be built
    ├── ProviderStartError          a worker did not come up; .stage says where
    ├── ProviderCrashedError        the worker died during the call; .exit_code / .signal
    ├── ProviderUnavailableError    failed, stopped, or still restarting at the deadline
    ├── ProviderBusyError           over its call limits (or the host's): refused at once, try again
    ├── CallTimeoutError            the call's deadline passed (the worker was told to cancel)
    ├── ProviderDataError           the provider data was rejected by the provider's validator
    ├── RoutingError                no provider serves that API or model
    ├── PayloadTooLargeError        an argument or result is over the message size limit
    ├── WorkerProtocolError         the worker broke the wire contract (version, malformed reply)
    └── RemoteError                 the provider raised; .type_name, .message, .remote_traceback
        ├── MethodNotFoundError     the provider has no such public method
        └── BadArgumentsError       the arguments do not fit the method's signature or types
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Sequence
from dataclasses import dataclass

from hostel._redact import redact

__all__ = [
    "BadArgumentsError",
    "CallTimeoutError",
    "ConfigError",
    "EnvBuildError",
    "HostelError",
    "MethodNotFoundError",
    "PayloadTooLargeError",
    "Problem",
    "ProviderBusyError",
    "ProviderCrashedError",
    "ProviderDataError",
    "ProviderStartError",
    "ProviderUnavailableError",
    "RemoteError",
    "RoutingError",
    "WorkerProtocolError",
]


class HostelError(Exception):
    """Base of every hostel error. ``provider_id`` is set when one provider is concerned."""

    def __init__(self, message: str, *, provider_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider_id = provider_id

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config or spec: where, which key, what, and what to do."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class ConfigError(HostelError):
    """The run config or a provider spec is invalid. ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem], *, provider_id: str | None = None) -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        head = "invalid configuration" if len(lines) != 1 else "invalid configuration:"
        text = head + (" " + lines[0] if len(lines) == 1 else "".join(f"\n  - {line}" for line in lines))
        super().__init__(text, provider_id=provider_id)


class EnvBuildError(HostelError):
    """A provider's virtualenv could not be built; carries the command and the installer's stderr tail. ``stage``
    is ``build``, or where the build's check found that the provider does not work (``import``, ``config`` ...)."""

    def __init__(
        self,
        message: str,
        *,
        provider_id: str | None = None,
        requirements: Sequence[str] = (),
        command: Sequence[str] = (),
        stderr_tail: str = "",
        stage: str = "build",
    ) -> None:
        self.stage = stage
        # URLs in requirements and commands may carry index credentials: never in a message.
        message = redact(message)
        self.requirements = [redact(r) for r in requirements]
        self.command = [redact(c) for c in command]
        self.stderr_tail = redact(stderr_tail)
        text = message
        if self.command:
            text += f"\n  command: {' '.join(self.command)}"
        if self.requirements:
            text += f"\n  requirements: {', '.join(self.requirements)}"
        if stderr_tail:
            text += "\n  installer said:\n" + _indent(stderr_tail)
        super().__init__(text, provider_id=provider_id)


class ProviderStartError(HostelError):
    """A provider worker did not start. ``stage`` is one of import, config, factory, protocol, handshake, timeout;
    a replacement's also health (its first health check), a reload's also build (its env)."""

    def __init__(
        self, message: str, *, provider_id: str, stage: str, stderr_tail: str = "", pid: int | None = None
    ) -> None:
        self.stage = stage
        self.stderr_tail = stderr_tail
        self.pid = pid
        text = f"provider {provider_id!r} failed to start (stage: {stage}): {message}"
        if stderr_tail:
            text += "\n  worker stderr (last lines):\n" + _indent(stderr_tail)
        super().__init__(text, provider_id=provider_id)


def describe_exit(exit_code: int | None, signal: int | None) -> str:
    """'exited with code 3' / 'killed by SIGKILL'."""
    if signal is not None:
        try:
            name = _signal.Signals(signal).name
        except ValueError:
            name = f"signal {signal}"
        return f"killed by {name}"
    return f"exited with code {exit_code}"


class ProviderCrashedError(HostelError):
    """The provider's worker exited or was killed while the call was in flight."""

    def __init__(
        self,
        *,
        provider_id: str,
        exit_code: int | None,
        signal: int | None,
        stderr_tail: str = "",
        pid: int | None = None,
        reason: str = "",
    ) -> None:
        self.exit_code = exit_code
        self.signal = signal
        self.stderr_tail = stderr_tail
        self.pid = pid
        self.reason = reason
        text = f"provider {provider_id!r} worker [pid {pid}] {describe_exit(exit_code, signal)} during the call"
        if reason:
            text += f" ({reason})"
        text += "; the call was not retried"
        if stderr_tail:
            text += "\n  worker stderr (last lines):\n" + _indent(stderr_tail)
        super().__init__(text, provider_id=provider_id)


class ProviderUnavailableError(HostelError):
    """The provider is failed, stopped, or was still restarting when the call's deadline passed."""


class ProviderBusyError(HostelError):
    """The provider (or the host) is at its call limits; the call was refused at once, nothing was sent."""

    retry_after_s = 1  # what HTTP clients are told (Retry-After)


class CallTimeoutError(HostelError):
    """The call's deadline passed; the worker was told to cancel it."""


class ProviderDataError(HostelError):
    """The request's provider data was rejected by the provider's ``provider_data_validator``."""


class RoutingError(HostelError):
    """No provider serves the requested API or model."""


class PayloadTooLargeError(HostelError):
    """An argument or result is larger than the message size limit (``hostel.max_message_mb``)."""


class WorkerProtocolError(HostelError):
    """The worker broke the wire contract: wrong protocol version, malformed or missing reply."""


class RemoteError(HostelError):
    """The provider raised. ``type_name``, ``message`` and ``remote_traceback`` describe the exception; ``bases``
    names its base classes (nearest first) and ``status_code`` is its HTTP status attribute, if it had one;
    ``attributes_json`` its public attributes that are JSON, as a JSON object (``b""``: none)."""

    def __init__(
        self,
        *,
        provider_id: str,
        method: str,
        type_name: str,
        message: str,
        remote_traceback: str = "",
        bases: tuple[str, ...] = (),
        status_code: int | None = None,
        attributes_json: bytes = b"",
    ) -> None:
        self.type_name = type_name
        self.attributes_json = attributes_json
        self.remote_message = message
        self.remote_traceback = remote_traceback
        self.bases = bases
        self.status_code = status_code
        self.method = method
        super().__init__(self._summary(provider_id, method, type_name, message), provider_id=provider_id)

    @staticmethod
    def _summary(provider_id: str, method: str, type_name: str, message: str) -> str:
        return f"provider {provider_id!r} raised {type_name} in {method}(): {message}{remedy(type_name, message)}"


def remedy(type_name: str, message: str) -> str:
    """What the operator can do about a provider's exception, when it is theirs to cure (``""`` otherwise): a module
    missing from the provider's env, which a spec that forgot a package leaves out (an import made only when a
    method runs passes the check at build time)."""
    if type_name != "ModuleNotFoundError":
        return ""
    found = _NO_MODULE.search(message)
    if found is None:
        return ""
    module = found.group(1).split(".")[0]
    return f" (its env has no module {module!r}: add the package that provides it to the provider's pip_packages)"


_NO_MODULE = re.compile(r"No module named '([^']+)'")


class MethodNotFoundError(RemoteError):
    """The provider has no public method of that name."""

    @staticmethod
    def _summary(provider_id: str, method: str, type_name: str, message: str) -> str:
        return f"provider {provider_id!r}: {message}"


class BadArgumentsError(RemoteError):
    """The arguments do not fit the method's signature or type hints."""

    @staticmethod
    def _summary(provider_id: str, method: str, type_name: str, message: str) -> str:
        return f"bad arguments for provider {provider_id!r}: {message}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())
