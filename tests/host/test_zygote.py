"""Zygotes: workers forked from a pre-imported process per env (real venvs, real forks)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

from hostel import Host
from hostel.errors import ProviderCrashedError
from tests.conftest import make_config, provider_spec, wait_until


def _config(tmp_path: Path, **entry: Any) -> Path:
    spec = provider_spec(**({"module": entry.pop("module")} if "module" in entry else {}))
    provider = {"provider_id": "t", "provider_type": "inline::testprov", "config": {"greeting": "hi"}, **entry}
    return make_config(
        tmp_path,
        specs={"inline/tool_runtime/testprov": spec},
        providers={"tool_runtime": [provider]},
        hostel={"restart": {"backoff_initial_s": 0.01}},
    )


def _parent(pid: int | None) -> psutil.Process:
    assert pid is not None
    return psutil.Process(psutil.Process(pid).ppid())


async def _ready_again(host: Host, old: int | None) -> int:
    def ready() -> bool:
        status = host.status()[0]
        return status.state == "ready" and status.pid not in (None, old)

    assert await asyncio.to_thread(wait_until, ready, 30)
    pid = host.status()[0].pid
    assert pid is not None
    return pid


async def test_workers_and_their_restarts_are_forked_from_the_envs_zygote(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path)) as host:
        first = host.status()[0].pid
        zygote = _parent(first)
        assert zygote.pid != os.getpid() and zygote.ppid() == os.getpid()
        # ... -m hostel_sdk.zygote FD hostel_testprov: the provider's module is imported before forking
        assert zygote.cmdline()[-3] == "hostel_sdk.zygote" and zygote.cmdline()[-1] == "hostel_testprov"
        os.kill(first, signal.SIGKILL)
        second = await _ready_again(host, first)
        assert _parent(second).pid == zygote.pid  # the restart was a fork of the same zygote
        assert await host.provider("t").greet(name="z") == "hi, z"
        with pytest.raises(ProviderCrashedError) as crash:
            await host.provider("t").crash(code=3)
        assert crash.value.exit_code == 3 and "about to crash" in crash.value.stderr_tail  # as for a spawned one


async def test_a_zygote_that_dies_takes_no_worker_with_it(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path)) as host:
        worker = host.status()[0].pid
        zygote = _parent(worker)
        zygote.kill()
        zygote.wait(5)
        assert await host.provider("t").greet(name="still") == "hi, still"  # the worker serves on
        assert host.status()[0].pid == worker
        os.kill(worker, signal.SIGKILL)  # its exit is still seen, from a pidfd (the code is unknown now)
        restarted = await _ready_again(host, worker)
        assert _parent(restarted).cmdline()[-3] == "hostel_sdk.zygote" and _parent(restarted).pid != zygote.pid


async def test_zygote_false_spawns_workers_as_before(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path, zygote=False)) as host:
        assert _parent(host.status()[0].pid).pid == os.getpid()


async def test_a_module_that_starts_threads_is_not_imported_before_forking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "hostel.launch.zygote")
    async with Host.from_config(_config(tmp_path, module="hostel_testprov.threaded")) as host:
        zygote = _parent(host.status()[0].pid)
        assert zygote.cmdline()[-2] == "hostel_sdk.zygote"  # the runtime alone: no module argument
        assert "importing hostel_testprov.threaded starts threads" in caplog.text
        assert await host.provider("t").greet(name="t") == "hi, t"


async def test_a_sandboxed_providers_module_is_imported_only_inside_its_sandbox(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path, sandbox=True)) as host:
        zygote = _parent(host.status()[0].pid)
        assert zygote.cmdline()[-2] == "hostel_sdk.zygote"
        assert await host.provider("t").greet(name="s") == "hi, s"
