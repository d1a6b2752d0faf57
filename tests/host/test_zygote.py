"""Zygotes: workers forked from a pre-imported process per env (real venvs, real forks)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from hostel import Host
from hostel.errors import ProviderCrashedError
from hostel.launch.process import ProcessLauncher
from hostel.launch.zygote import Zygote, ZygoteSpec
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


def _parent(pid: int | None) -> int:
    assert pid is not None
    return psutil.Process(pid).ppid()


def _zygotes() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if "hostel_sdk.zygote" in p.cmdline()]


async def _zygote(host: Host) -> psutil.Process:
    """The host's zygote (started for its provider's first worker), once it can fork."""
    launcher = host.supervisor.launchers.get("process")
    assert isinstance(launcher, ProcessLauncher) and launcher.zygotes is not None
    zygotes = launcher.zygotes
    assert await asyncio.to_thread(wait_until, lambda: len(zygotes.pids()) == 1, 30)
    return psutil.Process(zygotes.pids()[0])


async def _restarted(host: Host, old: int | None) -> int:
    assert old is not None
    os.kill(old, signal.SIGKILL)

    def ready() -> bool:
        status = host.status()[0]
        return status.state == "ready" and status.pid not in (None, old)

    assert await asyncio.to_thread(wait_until, ready, 30)
    pid = host.status()[0].pid
    assert pid is not None
    return pid


async def test_the_first_worker_and_its_restarts_are_forks_of_the_envs_zygote(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path)) as host:
        first = host.status()[0].pid
        zygote = await _zygote(host)
        assert _parent(first) == zygote.pid  # the first too: it shares the zygote's pages with every later one
        # ... -m hostel_sdk.zygote FD: the runtime alone; each fork imports the provider's module itself
        assert zygote.cmdline()[-2] == "hostel_sdk.zygote"
        second = await _restarted(host, first)
        assert _parent(second) == zygote.pid
        third = await _restarted(host, second)
        assert _parent(third) == zygote.pid  # the same zygote, again
        assert await host.provider("t").greet(name="z") == "hi, z"
        with pytest.raises(ProviderCrashedError) as crash:
            await host.provider("t").crash(code=3)
        assert crash.value.exit_code == 3 and "about to crash" in crash.value.stderr_tail  # as for a spawned one


async def test_replicas_wait_for_the_zygote_and_are_all_forked(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path, replicas=3)) as host:
        zygote = await _zygote(host)
        assert {_parent(r.pid) for r in host.status()[0].replicas} == {zygote.pid}


async def test_a_zygote_that_dies_takes_no_worker_with_it(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path)) as host:
        zygote = await _zygote(host)
        worker = await _restarted(host, host.status()[0].pid)
        assert _parent(worker) == zygote.pid
        zygote.kill()
        zygote.wait(5)
        assert await host.provider("t").greet(name="still") == "hi, still"  # the worker serves on
        assert host.status()[0].pid == worker
        restarted = await _restarted(host, worker)  # its exit is still seen (from a pidfd: its code is unknown)
        assert await host.provider("t").greet(name="again") == "hi, again"
        assert (await _zygote(host)).pid != zygote.pid  # and a new zygote is warmed for the next restart
        assert restarted != worker


async def test_zygote_false_spawns_workers_as_before(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path, zygote=False)) as host:
        restarted = await _restarted(host, host.status()[0].pid)
        assert _parent(restarted) == os.getpid() and not _zygotes()


async def test_a_module_that_starts_threads_is_not_imported_before_forking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "hostel.launch.zygote")
    async with Host.from_config(_config(tmp_path, module="hostel_testprov.threaded", zygote="preload")) as host:
        zygote = await _zygote(host)
        assert zygote.cmdline()[-2] == "hostel_sdk.zygote"  # the runtime alone: no module argument
        assert "importing hostel_testprov.threaded starts threads" in caplog.text
        assert _parent(await _restarted(host, host.status()[0].pid)) == zygote.pid
        assert await host.provider("t").greet(name="t") == "hi, t"


async def test_a_sandboxed_providers_zygote_is_confined_from_its_first_line(tmp_path: Path) -> None:
    """A zygote runs its venv's .pth files at start: a sandboxed provider's zygote starts confined (python -S on
    hostel's bootstrap), imports the provider's module in there, and its forks narrow the sandbox to their own
    directory."""
    async with Host.from_config(_config(tmp_path, sandbox=True, zygote="preload")) as host:
        zygote = await _zygote(host)
        assert zygote.cmdline()[1:3] == ["-S", "-c"] and zygote.cmdline()[-3] == "hostel_sdk.zygote"
        assert zygote.cmdline()[-1] == "hostel_testprov"  # its module (zygote: preload), imported inside the sandbox
        restarted = await _restarted(host, host.status()[0].pid)
        assert _parent(restarted) == zygote.pid
        assert await host.provider("t").greet(name="s") == "hi, s"


async def test_a_reload_that_changes_the_workers_environment_replaces_the_zygote(tmp_path: Path) -> None:
    async with Host.from_config(_config(tmp_path, env={"FLAVOUR": "one"})) as host:
        old = await _zygote(host)
        report = await host.reload(_config(tmp_path, env={"FLAVOUR": "two"}))
        assert report.replaced == ("t",), report.summary()
        launcher = host.supervisor.launchers.get("process")
        assert isinstance(launcher, ProcessLauncher) and launcher.zygotes is not None
        zygotes = launcher.zygotes
        assert await asyncio.to_thread(wait_until, lambda: zygotes.pids() not in ([], [old.pid]), 30)
        new = await _zygote(host)  # one zygote still: the old one was stopped when replaced
        assert new.pid != old.pid and not old.is_running()
        assert _parent(await _restarted(host, host.status()[0].pid)) == new.pid
        assert new.environ().get("FLAVOUR") == "two"


async def test_a_fork_cancelled_while_it_waits_for_its_pid_leaves_no_worker_and_no_stale_reply() -> None:
    """The host stops while a provider starts: the fork's caller is cancelled after the zygote got the request.
    The zygote forks all the same; that worker must not outlive the cancellation, and the next fork must get
    its own pid, not the abandoned one's."""
    zygote = Zygote(ZygoteSpec(python=Path(sys.executable), env=dict(os.environ), cwd=None), None)
    await zygote.start()
    pipes: list[int] = []

    def stdio() -> tuple[int, int, int]:
        stdin_r, stdin_w = os.pipe()  # kept open: a worker waits on it for its start request
        out_r, out_w = os.pipe()
        pipes.extend((stdin_r, stdin_w, out_r, out_w))
        return stdin_r, out_w, out_w

    try:
        assert zygote.pid is not None
        forks = psutil.Process(zygote.pid)
        fork = asyncio.create_task(zygote.fork({}, None, stdio()))
        await asyncio.sleep(0)  # the request is sent: it waits for the pid
        fork.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fork
        pid = await zygote.fork({}, None, stdio())
        await asyncio.sleep(0.5)  # time for a wrongly answered fork to show as a second child
        assert [c.pid for c in forks.children() if c.status() != psutil.STATUS_ZOMBIE] == [pid]
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(zygote.exit_of(pid), 5)
    finally:
        await zygote.stop()
        for fd in pipes:
            os.close(fd)
