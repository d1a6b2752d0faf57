"""WorkerProcess against the fake worker's start-up scenarios."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from hostel.config.plan import load_plan
from hostel.errors import ProviderStartError
from hostel.launch.process import WorkerProcess
from tests.conftest import REPO, make_config

FAKE = REPO / "tests" / "fake_worker.py"


@pytest.fixture
def worker_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    plan = load_plan(make_config(tmp_path)).provider("t")
    socket_dir = Path(tempfile.mkdtemp(prefix="hostel-t-"))

    def make(scenario: str) -> WorkerProcess:
        return WorkerProcess(
            plan,
            Path(sys.executable),
            socket_dir / f"{scenario}.sock",
            max_message_bytes=2**20,
            command=[sys.executable, str(FAKE), scenario],
        )

    return make


async def test_exit_before_handshake_is_stage_handshake_with_exit_code_and_stderr(worker_for) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProviderStartError) as exc:
        await worker_for("exit-before-handshake").start(timeout=30)
    assert exc.value.stage == "handshake" and "exited with code 3" in str(exc.value)
    assert "exiting before the handshake" in exc.value.stderr_tail


async def test_bad_handshake_is_refused_and_the_worker_killed(worker_for) -> None:  # type: ignore[no-untyped-def]
    worker = worker_for("bad-handshake")
    with pytest.raises(ProviderStartError, match="bad handshake line") as exc:
        await worker.start(timeout=30)
    assert exc.value.stage == "handshake" and worker.exit_info is not None


async def test_wrong_protocol_version_says_what_to_upgrade(worker_for) -> None:  # type: ignore[no-untyped-def]
    worker = worker_for("wrong-protocol-version")
    with pytest.raises(ProviderStartError) as exc:
        await worker.start(timeout=30)
    assert exc.value.stage == "handshake"
    assert "protocol 99" in str(exc.value) and "rebuild the provider's env" in str(exc.value)
    assert worker.exit_info is not None


async def test_hang_before_ready_is_stage_timeout(worker_for) -> None:  # type: ignore[no-untyped-def]
    worker = worker_for("hang-before-ready")
    with pytest.raises(ProviderStartError) as exc:
        await worker.start(timeout=1.0)
    assert exc.value.stage == "timeout" and worker.exit_info is not None


async def test_ignore_sigterm_is_killed_after_the_grace(worker_for) -> None:  # type: ignore[no-untyped-def]
    worker = worker_for("ignore-sigterm")
    await worker.start(timeout=30)
    info = await worker.terminate(grace_s=0.5)
    assert info is not None and info.signal == 9


async def test_flood_stderr_keeps_a_bounded_tail(worker_for) -> None:  # type: ignore[no-untyped-def]
    worker = worker_for("flood-stderr")
    await worker.start(timeout=30)
    await worker.terminate(grace_s=2)
    tail = worker.stderr_tail(200).splitlines()
    assert len(tail) == 200  # a bounded ring buffer, not 20,000 lines
    assert "flood line 19999" in tail
