"""A real worker keeps freed memory for reuse (``hostel.retain_freed_mb``), so big messages reuse warm pages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from hostel import Host
from hostel.config.plan import load_plan
from hostel_sdk import _memory
from tests.conftest import make_config


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def _rss_growth_after_freeing(tmp_path: Path, megabytes: int = 24, **hostel: Any) -> float:
    """RSS of a worker after it allocated, touched and freed ``megabytes``, minus before."""
    async with Host.from_config(make_config(tmp_path, hostel=hostel)) as host:
        pid = _worker_pid(host)
        before = _rss_mb(pid)
        assert await host.provider("t").hog(megabytes=megabytes, hold_s=0) == megabytes * 2**20
        return _rss_mb(pid) - before


def _worker_pid(host: Host) -> int:
    slot = host.supervisor.providers["t"]
    assert slot.worker is not None and slot.worker.pid is not None
    return slot.worker.pid


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_freed_memory_is_kept_for_reuse_unless_turned_off(tmp_path: Path) -> None:
    kept = await _rss_growth_after_freeing(tmp_path / "kept")  # default: 64 MB
    returned = await _rss_growth_after_freeing(tmp_path / "returned", retain_freed_mb=0)
    assert kept > 20, f"the freed 24 MB should stay mapped for reuse; RSS grew {kept:.1f} MB"
    assert returned < 8, f"with retain_freed_mb: 0 glibc hands the 24 MB back; RSS grew {returned:.1f} MB"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_a_buffer_above_glibcs_largest_mmap_threshold_is_kept_too(tmp_path: Path) -> None:
    """glibc maps anything above 32 MiB fresh whatever its threshold says: a 50 MB file read every call paid
    for every page of it, every call. Within the retain size it is kept; past it, it goes back."""
    kept = await _rss_growth_after_freeing(tmp_path / "kept", megabytes=48)  # default: 64 MB
    returned = await _rss_growth_after_freeing(tmp_path / "returned", megabytes=48, retain_freed_mb=16)
    assert kept > 40, f"the freed 48 MB should stay for reuse; RSS grew {kept:.1f} MB"
    assert returned < 8, f"48 MB is more than the 16 MB a worker keeps; RSS grew {returned:.1f} MB"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_freed_memory_past_the_retain_size_goes_back_even_below_live_memory(tmp_path: Path) -> None:
    """A freed buffer with live memory above it is not the heap's top, which glibc alone never gives back."""
    async with Host.from_config(make_config(tmp_path, hostel={"retain_freed_mb": 40})) as host:
        pid = _worker_pid(host)
        before = _rss_mb(pid)
        await host.provider("t").hog(megabytes=56, hold_s=0, keep_after_kb=4096)
        held = _rss_mb(pid) - before
        deadline = time.monotonic() + 4 * _memory.CHECK_EVERY_S
        while _rss_mb(pid) - before > 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        after = _rss_mb(pid) - before
    assert held > 50, f"right after the call, the freed 56 MB below the kept 4 MB is still held; RSS grew {held:.1f}"
    assert after < 12, f"the worker should give back what it holds past 40 MB; RSS still {after:.1f} MB up"


def test_a_memory_limit_caps_what_is_kept_at_a_quarter(tmp_path: Path) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "free", "provider_type": "inline::testprov"},
            {"provider_id": "capped", "provider_type": "inline::testprov", "limits": {"memory_mb": 100}},
        ]
    }
    plan = load_plan(make_config(tmp_path, providers=providers, hostel={"retain_freed_mb": 48}))
    assert (plan.provider("free").worker.retain_freed_mb, plan.provider("capped").worker.retain_freed_mb) == (48, 25)
