"""The watchdogs of one running worker, small loops its replica attaches to it: the liveness probe, the
memory limit and the idle stop.

Every ``probe_interval_s`` the worker's ``Health/Check`` must answer within ``probe_timeout_s``. A miss while the
worker's watchdog thread says its event loop is blocked is no miss: the worker is busy (a synchronous call in an
async method), logged once, and only ``max_blocked_s`` bounds how long it may be. A worker that answers neither
``probe_failures`` times in a row is hung: killed, with its threads' stacks in the reason (its replica then
restarts it like a crash). docs/supervision.md has the whole story.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hostel.config import HostelSettings
from hostel.launch.base import WorkerHandle
from hostel.transport.channel import Channel

if TYPE_CHECKING:
    from hostel.supervise.replica import Replica

logger = logging.getLogger(__name__)


async def probe_liveness(
    provider_id: str, worker: WorkerHandle, channel: Channel, settings: HostelSettings, watched: Callable[[], bool]
) -> None:
    """Probe ``provider_id``'s ``worker`` for as long as ``watched()`` (it is still the provider's current one)."""
    missed = 0
    busy = False
    while True:
        await asyncio.sleep(settings.probe_interval_s)
        if not watched():
            return  # this worker is gone: its successor has a probe of its own
        if await channel.check_health(settings.probe_timeout_s):
            if busy:
                logger.info("provider %s [pid %s] serves again", provider_id, worker.pid)
            missed, busy = 0, False
            continue
        blocked = await worker.loop_blocked_s(settings.probe_timeout_s)
        if not watched():
            return  # the miss was its death, or it is being dropped: not a hang
        if blocked:
            missed = 0
            if not busy:
                busy = True
                logger.warning(
                    "provider %s [pid %s] is busy: its event loop has been blocked for %.0f s (its process answers, "
                    "so it is not killed; its calls end at their deadlines)",
                    provider_id, worker.pid, blocked,
                )  # fmt: skip
            if settings.max_blocked_s is not None and blocked > settings.max_blocked_s:
                await _kill_hung(
                    worker, f"blocked its event loop for {blocked:.0f}s (max_blocked_s={settings.max_blocked_s:g})"
                )
                return
            continue
        missed += 1
        failures = settings.probe_failures
        logger.warning("provider %s [pid %s] missed liveness probe %d of %d", provider_id, worker.pid, missed, failures)
        if missed >= failures:
            timeout = settings.probe_timeout_s
            await _kill_hung(worker, f"did not answer {missed} liveness probes in a row (probe_timeout_s={timeout:g})")
            return


async def _kill_hung(worker: WorkerHandle, reason: str) -> None:
    """Kill ``worker`` for ``reason``, with its threads' stacks (asked first) in the reason."""
    stacks = await worker.dump_stacks()
    worker.kill_for(reason + (f"; its threads were at:\n{stacks}" if stacks else ""))


# How often the memory watchdog samples a worker's resident memory.
_MEMORY_POLL_S = 0.2


async def watch_memory(worker: WorkerHandle, limit_mb: int) -> None:
    """``limits.memory_mb``: a worker whose resident memory passes the limit is killed (then restarted like a
    crash)."""
    limit = limit_mb * 2**20
    while worker.exit_info is None:
        rss = worker.rss_bytes()
        if rss is not None and rss > limit:
            worker.kill_for(f"exceeded its memory limit of {limit_mb} MB (limits.memory_mb; RSS {rss / 2**20:.0f} MB)")
            return
        await asyncio.sleep(_MEMORY_POLL_S)


async def watch_idle(replica: Replica, worker: WorkerHandle, idle_s: float) -> None:
    """``idle_stop_s``: stop a worker nobody called for that long (the replica sleeps); the next call starts it
    again."""
    while worker is replica.worker and not replica.stopping:
        await asyncio.sleep(max(replica.last_used + idle_s - time.monotonic(), 0.05))
        if worker is not replica.worker or replica.stopping or replica.state != "ready":
            return
        if not replica.busy() and time.monotonic() - replica.last_used >= idle_s:
            # Not one of this worker's tasks: sleeping cancels those.
            replica.in_background(replica.sleep(f"no call for {idle_s:g}s (idle_stop_s)"))
            return
