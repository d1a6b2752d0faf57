"""The restart budget: how long to wait before the next restart, and when to give up. Pure arithmetic.

Exponential backoff from ``backoff_initial_s``, doubling per crash still inside the ``window_s``, capped
at ``backoff_max_s``; more than ``max_restarts`` crashes inside the window and the provider is ``failed``.
"""

from __future__ import annotations

import collections

from hostel.config import RestartPolicy


class RestartBudget:
    """Crashes remembered within the policy's window."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._crashes: collections.deque[float] = collections.deque()

    @property
    def crashes(self) -> int:
        """Crashes counted in the current window (as of the last ``crashed``)."""
        return len(self._crashes)

    def crashed(self, now: float) -> float | None:
        """Count a crash at ``now`` (monotonic seconds): the delay before the restart, or ``None`` to give up."""
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.policy.window_s:
            self._crashes.popleft()
        if len(self._crashes) > self.policy.max_restarts:
            return None
        backoff = self.policy.backoff_initial_s * 2 ** (len(self._crashes) - 1)
        return float(min(backoff, self.policy.backoff_max_s))

    def reset(self) -> None:
        """Start over (the provider was re-armed by hand)."""
        self._crashes.clear()
