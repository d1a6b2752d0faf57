"""A real worker keeps freed memory for reuse (``hostel.retain_freed_mb``), so big messages reuse warm pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostel import Host
from hostel.config.plan import load_plan
from tests.conftest import make_config


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def _rss_growth_after_freeing(tmp_path: Path, **hostel: Any) -> float:
    """RSS of a worker after it allocated, touched and freed 24 MB, minus before."""
    async with Host.from_config(make_config(tmp_path, hostel=hostel)) as host:
        slot = host.supervisor.providers["t"]
        assert slot.worker is not None and slot.worker.pid is not None
        before = _rss_mb(slot.worker.pid)
        assert await host.provider("t").hog(megabytes=24, hold_s=0) == 24 * 2**20
        return _rss_mb(slot.worker.pid) - before


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
async def test_freed_memory_is_kept_for_reuse_unless_turned_off(tmp_path: Path) -> None:
    kept = await _rss_growth_after_freeing(tmp_path / "kept")  # default: 64 MB
    returned = await _rss_growth_after_freeing(tmp_path / "returned", retain_freed_mb=0)
    assert kept > 20, f"the freed 24 MB should stay mapped for reuse; RSS grew {kept:.1f} MB"
    assert returned < 8, f"with retain_freed_mb: 0 glibc hands the 24 MB back; RSS grew {returned:.1f} MB"


def test_a_memory_limit_caps_what_is_kept_at_a_quarter(tmp_path: Path) -> None:
    providers = {
        "tool_runtime": [
            {"provider_id": "free", "provider_type": "inline::testprov"},
            {"provider_id": "capped", "provider_type": "inline::testprov", "limits": {"memory_mb": 100}},
        ]
    }
    plan = load_plan(make_config(tmp_path, providers=providers, hostel={"retain_freed_mb": 48}))
    assert (plan.provider("free").worker.retain_freed_mb, plan.provider("capped").worker.retain_freed_mb) == (48, 25)
