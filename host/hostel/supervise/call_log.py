"""What the host logs about a call that failed: once, where every call passes (``CallPath.call``).

A provider's own exception is logged at WARNING with its remote traceback (the HTTP reply never carries it);
every other failure (timeouts, crashes, busy, unavailable) at INFO, one line: provider, method, error type.
Each call gets a number, so that the lines of one call can be told from another's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from hostel.errors import BadArgumentsError, HostelError, MethodNotFoundError, RemoteError, remedy

logger = logging.getLogger("hostel.calls")

_numbers = itertools.count(1)


def next_call_id() -> int:
    """The next call's number (per host process)."""
    return next(_numbers)


def log_failed_call(provider_id: str, method: str, call_id: int, exc: BaseException) -> None:
    """Log ``exc``, which ended call ``call_id`` of ``provider_id``'s ``method``."""
    if isinstance(exc, asyncio.CancelledError):
        return  # the caller went away: nothing failed
    if isinstance(exc, RemoteError) and not isinstance(exc, (MethodNotFoundError, BadArgumentsError)):
        logger.warning(
            "provider %s: %s() raised %s: %s%s [call %d]%s",
            provider_id, method, exc.type_name, exc.remote_message, remedy(exc.type_name, exc.remote_message), call_id,
            f"\n{exc.remote_traceback.rstrip()}" if exc.remote_traceback else "",
        )  # fmt: skip
    elif isinstance(exc, HostelError):
        logger.info("provider %s: %s() failed: %s: %s [call %d]", provider_id, method, type(exc).__name__, exc, call_id)
