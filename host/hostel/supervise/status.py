"""What the host shows of a provider: its ``State`` and its ``ProviderStatus``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

# Best first: a provider with replicas is in the best state any of its replicas is in (it serves if any does).
State = Literal["ready", "replacing", "restarting", "starting", "building", "idle", "failed", "stopped"]
# States in which the provider has a worker that is, or is about to be, running.
RUNNING: frozenset[State] = frozenset({"starting", "ready", "restarting", "replacing"})


def best(states: Sequence[State]) -> State:
    """The best of ``states`` (the order ``State`` lists them in)."""
    order = typing.get_args(State)
    return min(states, key=order.index)


@dataclass(frozen=True)
class ProviderStatus:
    """A provider's state as seen by the host; resource figures only when asked for (``status(usage=True)``)."""

    provider_id: str
    api: str
    provider_type: str
    state: State
    pid: int | None
    restarts: int
    last_exit: str | None
    env_path: str | None
    new_pid: int | None = None  # while ``replacing``: the new worker's pid (``pid`` is the one still serving)
    rss_bytes: int | None = None  # the worker's resident memory
    pss_bytes: int | None = None  # its proportional share: shared pages counted once across processes
    cpu_seconds: float | None = None  # user + system CPU time of the current worker
    replica: int | None = None  # in ``replicas``: which replica this is
    replicas: tuple[ProviderStatus, ...] = ()  # with ``replicas: N`` > 1: each replica's own status
    address: str | None = None  # where the host reaches the current worker (its socket, or host:port on its Ray node)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def combined(each: Sequence[ProviderStatus]) -> ProviderStatus:
    """One provider's status from its replicas': the best replica's state, the first replica's pid, every
    replica's restarts and figures added up, and each replica's own status in ``replicas``."""
    if len(each) == 1:
        return each[0]

    def total(name: str) -> Any:
        values = [getattr(s, name) for s in each if getattr(s, name) is not None]
        return sum(values) if values else None

    return dataclasses.replace(
        each[0],
        state=best([s.state for s in each]),
        restarts=sum(s.restarts for s in each),
        last_exit=next((s.last_exit for s in each if s.last_exit), None),
        rss_bytes=total("rss_bytes"),
        pss_bytes=total("pss_bytes"),
        cpu_seconds=total("cpu_seconds"),
        replicas=tuple(dataclasses.replace(s, replica=i) for i, s in enumerate(each)),
    )
