"""Per-request context inside a worker: the provider data and deadline of the call being served."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestContext:
    """What a call brings along: validated and raw provider data, and its deadline (monotonic seconds)."""

    provider_data: Any = None
    raw_provider_data: bytes | memoryview = b""
    deadline: float | None = None
    span: Any = None  # the call's hostel_sdk._telemetry.CallSpan, when the host traces

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline, or ``None`` when there is none."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


_EMPTY = RequestContext()
_request: ContextVar[RequestContext] = ContextVar("hostel_request", default=_EMPTY)


def request_provider_data() -> Any:
    """Return the provider data of the request being served.

    The object built by the provider's ``provider_data_validator`` when it has one, else the raw
    dict sent by the caller (``X-OGX-Provider-Data`` / ``X-LlamaStack-Provider-Data``), or ``None`` when the
    call carried none.
    """
    return _request.get().provider_data


def current_request() -> RequestContext:
    """The context of the request being served (empty outside one)."""
    return _request.get()


def enter_request(context: RequestContext) -> Any:
    """Make ``context`` current; returns a token for ``leave_request``."""
    return _request.set(context)


def leave_request(token: Any) -> None:
    """Undo ``enter_request``."""
    _request.reset(token)
