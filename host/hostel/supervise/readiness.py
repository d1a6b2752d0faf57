"""A replica's state as its callers see it: a call is served, waits for a start (until its deadline), or is
refused at once with why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hostel.errors import ProviderUnavailableError
from hostel.supervise.status import State

_REARM = "; re-arm it with `hostel restart {id}`, POST /v1/providers/{id}/restart or Host.restart({id!r})"
_RESTART = "; start it with `hostel start {id}`, POST /v1/hostel/providers/{id}/start or Host.start_provider({id!r})"


# How often a waiting call looks again at what the start under way waits for.
_RECHECK_S = 0.5


class Readiness:
    """The state of one replica of ``provider_id``, and what a call arriving now is told."""

    def __init__(self, provider_id: str) -> None:
        self.provider_id = provider_id
        self.state: State = "stopped"
        self.last_exit: str | None = None
        self.stopped_by: str | None = None  # why an operator stopped it, so calls are told
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()  # set while it is failed or stopped: waiting calls give up
        # What the start under way waits for that may never come (a Ray node that is gone): calls give up too.
        self.waiting_for: Callable[[], str | None] = lambda: None

    @property
    def ready(self) -> bool:
        """Whether a worker serves: calls go straight to it."""
        return self._ready.is_set()

    def set(self, state: State) -> None:
        """Enter ``state`` (calls waiting give up if it is ``failed`` or ``stopped``)."""
        self.state = state
        if state in ("failed", "stopped"):
            self._settled.set()
        else:
            self._settled.clear()

    def serve(self) -> None:
        """``ready``: a worker serves, and the calls waiting for one go to it."""
        self.set("ready")
        self._ready.set()

    def hold(self) -> None:
        """No worker serves for now: calls wait (or are refused, by the state)."""
        self._ready.clear()

    def refuse_if_down(self) -> None:
        """``ProviderUnavailableError`` if it is ``failed`` or ``stopped``, saying why and how to bring it back."""
        if self.state in ("failed", "stopped"):
            hint = _REARM if self.state == "failed" else _RESTART if self.stopped_by else ""
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}"
                + (f" ({self.stopped_by})" if self.state == "stopped" and self.stopped_by else "")
                + (f" (last exit: {self.last_exit})" if self.last_exit and self.state == "failed" else "")
                + hint.format(id=self.provider_id),
                provider_id=self.provider_id,
            )

    async def wait(self, deadline: float) -> None:
        """Wait for a worker to serve, until ``deadline``; give up at once if it fails or stops, or while its
        start waits for something that may never come."""
        timeout = deadline - time.monotonic()
        ready = asyncio.ensure_future(self._ready.wait())
        settled = asyncio.ensure_future(self._settled.wait())
        try:
            while not (ready.done() or settled.done() or self.waiting_for() or time.monotonic() >= deadline):
                left = deadline - time.monotonic()
                await asyncio.wait(
                    {ready, settled}, timeout=min(max(left, 0), _RECHECK_S), return_when="FIRST_COMPLETED"
                )
        finally:
            ready.cancel()
            settled.cancel()
        if self._ready.is_set():
            return
        self.refuse_if_down()
        if (waiting := self.waiting_for()) is not None:
            raise ProviderUnavailableError(
                f"provider {self.provider_id!r} is {self.state}, waiting for {waiting}; its calls are refused "
                "until then",
                provider_id=self.provider_id,
            )
        raise ProviderUnavailableError(
            f"provider {self.provider_id!r} was still {self.state} when the call's {timeout:g}s deadline passed",
            provider_id=self.provider_id,
        )
