"""Requests that just crashed a bridged provider's worker, so that a client's automatic retry is not run again.

``hostel run`` tells HTTP clients not to retry a call that crashed its worker (``x-should-retry: false``); behind a
Llama Stack or OGX server the server writes the response, and the ``openai`` and ``llama-stack-client`` libraries
retry any 5xx twice by default: the request that killed the worker would kill the new one too. So the bridge
remembers, for ``MEMORY_S`` seconds, the fingerprint of each request that crashed a worker (method, arguments,
provider data) and answers the same request with a 503 saying why, without sending it.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from hostel.errors import ProviderCrashedError, ProviderUnavailableError, describe_exit
from hostel_sdk import _blobs, codec

MEMORY_S = 60.0
_REMEMBERED = 256  # requests remembered at once per provider: the oldest is forgotten first


class _Shape(_blobs.Outbox):
    """Blobs as what identifies them (kind, name, size), read from nothing: for a fingerprint."""

    def __init__(self) -> None:
        super().__init__(iter(()))

    def marker(self, value: Any) -> dict[str, Any]:
        return {"blob": _blobs.summary(value)}


def fingerprint(method: str, args: Any, kwargs: Any, provider_data: Any) -> str | None:
    """A digest of one request, or ``None`` when it cannot be taken (then it is never held back)."""
    try:
        data = codec.dumps([method, list(args), kwargs, provider_data], blobs=_Shape(), as_arguments=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(data).hexdigest()


class CrashedRequests:
    """The recent requests that crashed one provider's worker."""

    def __init__(self, provider_id: str) -> None:
        self._provider_id = provider_id
        self._recent: OrderedDict[str, tuple[float, ProviderCrashedError]] = OrderedDict()

    def remember(self, key: str | None, crash: ProviderCrashedError) -> None:
        """``key``'s request crashed the worker just now."""
        if key is None:
            return
        self._recent[key] = (time.monotonic(), crash)
        self._recent.move_to_end(key)
        while len(self._recent) > _REMEMBERED:
            self._recent.popitem(last=False)

    def refused(self, request: Callable[[], str | None]) -> ProviderUnavailableError | None:
        """The error for a request (``request()`` gives its fingerprint, taken only when some request crashed the
        worker lately) that crashed the worker less than ``MEMORY_S`` ago, else ``None``."""
        if not self._recent:
            return None
        key = request()
        if key is None or key not in self._recent:
            return None
        when, crash = self._recent[key]
        ago = time.monotonic() - when
        if ago > MEMORY_S:
            del self._recent[key]
            return None
        return ProviderUnavailableError(
            f"provider {self._provider_id!r}: this same request crashed its worker [pid {crash.pid}] {ago:.0f} s ago "
            f"({describe_exit(crash.exit_code, crash.signal)}); it is not sent again within {MEMORY_S:.0f} s, so "
            "that an automatic retry cannot crash the new worker too",
            provider_id=self._provider_id,
        )
