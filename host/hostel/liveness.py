"""The liveness probe of one running worker: a small loop attached to it by its provider's slot.

Every ``probe_interval_s`` the worker's ``Health/Check`` must answer within ``probe_timeout_s``. A miss while the
worker's watchdog thread says its event loop is blocked is no miss: the worker is busy (a synchronous call in an
async method), logged once, and only ``max_blocked_s`` bounds how long it may be. A worker that answers neither
``probe_failures`` times in a row is hung: killed, with its threads' stacks in the reason (its slot then
restarts it like a crash). docs/supervision.md has the whole story.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hostel.config import HostelSettings
from hostel.launch.base import WorkerHandle
from hostel.transport.channel import Channel

logger = logging.getLogger("hostel.slot")  # where the lifecycle lines of a provider have always been


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
