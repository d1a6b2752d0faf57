"""A provider with the habits of providers people run, none of them faults: it forks worker processes the
ways real libraries do (``multiprocessing`` in each start method, ``ProcessPoolExecutor``, raw ``fork``),
blocks its event loop with synchronous work, prints, logs, lets a thread die with a traceback, raises its
own ``KeyError``, reports its upstream's health, and draws from a generator seeded at import.

hostel's tests (tests/host/test_habits.py) call these through ``hostel run`` and assert that each works as
it would in a plain Python process or in-process under Llama Stack.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from typing import Any

from pydantic import BaseModel

logger = logging.getLogger(__name__)

# Import-time state, as numpy's global generator or ids minted at import are.
_FIRST_DRAW = random.Random().random()


class Config(BaseModel):
    upstream_ok: bool = True


def _square(x: int) -> int:
    return x * x


def _child_pid(_: int) -> int:
    return os.getpid()


def _fork_once() -> int:
    """Raw ``os.fork()``: the child exits 0 after touching the interpreter; the parent returns its status."""
    pid = os.fork()
    if pid == 0:
        try:
            sum(range(1000))
            os._exit(0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return status


class HabitProvider:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def pid(self) -> int:
        return os.getpid()

    async def pool_map(self, n: int, method: str = "fork", processes: int = 2) -> list[int]:
        """``with multiprocessing.get_context(method).Pool(processes) as pool: pool.map(...)``: the idiom, whose
        exit calls ``terminate()`` (SIGTERM to every child)."""
        with multiprocessing.get_context(method).Pool(processes) as pool:
            return pool.map(_square, range(n))

    async def process_pool(self, n: int, method: str = "fork") -> list[int]:
        """``ProcessPoolExecutor`` with the given start method."""
        context = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            return list(pool.map(_square, range(n)))

    async def raw_forks(self, n: int) -> dict[str, int]:
        """``n`` raw forks, one after another; how many children exited 0 and how many did not."""
        statuses = [_fork_once() for _ in range(n)]
        ok = sum(1 for status in statuses if status == 0)
        return {"ok": ok, "failed": n - ok}

    async def signal_child(self) -> str:
        """Fork a child that waits; SIGTERM it and report how it ended (default disposition: killed by SIGTERM)."""
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        time.sleep(0.2)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            return f"signal {os.WTERMSIG(status)}"
        return f"exit {os.WEXITSTATUS(status)}"

    async def block(self, seconds: float) -> str:
        """Synchronous work inside an ``async def`` (a sync HTTP client, a tokenizer): the loop is blocked."""
        time.sleep(seconds)
        return f"blocked {seconds:g}s"

    async def chatter(self, text: str) -> str:
        """What a provider prints, logs at INFO, and what a dying thread leaves on stderr."""
        print(f"print: {text}", flush=True)
        logger.info("log: %s", text)

        def die() -> None:
            raise RuntimeError(f"thread died: {text}")

        thread = threading.Thread(target=die, name="habit-thread")
        thread.start()
        thread.join()
        sys.stderr.flush()
        return "said"

    async def lookup(self, key: str) -> str:
        """A provider's own bug: a ``KeyError`` from a dict lookup."""
        return {"known": "value"}[key]

    async def first_random(self, hold_s: float = 0) -> dict[str, Any]:
        """This worker's pid and the first value drawn from a generator made when its module was imported (after
        ``hold_s``: concurrent calls then reach each replica)."""
        await asyncio.sleep(hold_s)
        return {"pid": os.getpid(), "parent": os.getppid(), "value": _FIRST_DRAW}

    async def health(self) -> dict[str, Any]:
        if self.config.upstream_ok:
            return {"status": "OK"}
        return {"status": "Error", "message": "upstream http://127.0.0.1:9/ is unreachable"}

    async def sleep(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"


async def get_provider_impl(config: Config, deps: dict[Any, Any]) -> HabitProvider:
    return HabitProvider(config)
