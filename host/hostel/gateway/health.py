"""Each provider's own ``health()``, as Llama Stack reports it in ``/v1/providers``.

Llama Stack answers the ``health`` field of ``ProviderInfo`` by calling the provider's ``health()`` with a
timeout: ``{"status": "OK" | "Error" | "Not Implemented", "message": ...}``. Operators read it (an upstream
that is down shows there while the provider's process runs fine). hostel asks the running worker the same way,
for every provider at once, and keeps each answer for ``ttl_s`` so that a dashboard polling the route does not
turn into a stream of health calls. A provider whose worker does not run reports its state instead (``idle``:
it starts on its first call; ``failed``, ``restarting``: an error). ``/v1/health`` stays "workers serving".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from hostel.errors import CallTimeoutError, HostelError, MethodNotFoundError, RemoteError
from hostel.transport.channel import Channel

OK, ERROR, NOT_IMPLEMENTED = "OK", "Error", "Not Implemented"
TIMEOUT_S = 5.0  # Llama Stack's HEALTH_CHECK_TIMEOUT
TTL_S = 5.0


class ProviderHealth:
    """Asks providers' ``health()``; ``channel_of(provider_id)`` is the running worker's channel, or None."""

    def __init__(
        self, channel_of: Callable[[str], Channel | None], *, timeout_s: float = TIMEOUT_S, ttl_s: float = TTL_S
    ) -> None:
        self._channel_of = channel_of
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._answers: dict[str, tuple[float, Channel, asyncio.Task[dict[str, Any]]]] = {}

    async def reports(self, provider_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Each running provider's report (``None`` for one with no running worker), asked concurrently."""
        ids = list(provider_ids)
        asked = await asyncio.gather(*(self._report(provider_id) for provider_id in ids))
        return dict(zip(ids, asked, strict=True))

    async def _report(self, provider_id: str) -> dict[str, Any] | None:
        channel = self._channel_of(provider_id)
        if channel is None:
            self._answers.pop(provider_id, None)
            return None
        now = time.monotonic()
        cached = self._answers.get(provider_id)
        if cached is None or cached[1] is not channel or (cached[2].done() and now - cached[0] > self._ttl_s):
            cached = (now, channel, asyncio.ensure_future(self._ask(channel)))  # shared by concurrent requests
            self._answers[provider_id] = cached
        return await asyncio.shield(cached[2])

    async def _ask(self, channel: Channel) -> dict[str, Any]:
        try:
            answer = await channel.call("health", (), {}, timeout=self._timeout_s, provider_data=None)
        except MethodNotFoundError:
            return {"status": NOT_IMPLEMENTED, "message": "Provider does not implement health check"}
        except (CallTimeoutError, TimeoutError):
            return {"status": ERROR, "message": f"Health check timed out after {self._timeout_s:g} seconds"}
        except RemoteError as exc:
            return {"status": ERROR, "message": f"Health check failed: {exc.remote_message}"}
        except HostelError as exc:
            return {"status": ERROR, "message": f"Health check failed: {exc}"}
        return normalise(answer)


def normalise(answer: Any) -> dict[str, Any]:
    """A ``health()`` result (Llama Stack's ``HealthResponse``: a dict with ``status`` and maybe ``message``) as
    ``{"status", "message"?}``; anything else is reported as it came, as an error."""
    if not isinstance(answer, dict) or "status" not in answer:
        return {"status": ERROR, "message": f"health() answered {answer!r}, not {{'status': ...}}"}
    status = str(answer["status"])
    known = {s.upper(): s for s in (OK, ERROR, NOT_IMPLEMENTED)}
    report: dict[str, Any] = {"status": known.get(status.upper(), status)}
    if answer.get("message") is not None:
        report["message"] = answer["message"]
    return report
