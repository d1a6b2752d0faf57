"""hostel_sdk._test_recording: OGX's recorded-inference test mode in a worker, as its server turns it on."""

from __future__ import annotations

import logging
import sys
import types
from contextvars import ContextVar
from typing import Any

import pytest

from hostel_sdk import _test_recording

_TEST: ContextVar[str | None] = ContextVar("test", default=None)
_DATA: ContextVar[Any] = ContextVar("data", default=None)


class _Recorder:
    def __init__(self) -> None:
        self.entered = 0

    def __enter__(self) -> None:
        self.entered += 1


def _install(monkeypatch: pytest.MonkeyPatch, recorder: Any) -> None:
    def sync() -> Any:
        data = _DATA.get()
        return _TEST.set(data["__test_id"]) if data and "__test_id" in data else None

    testing = types.SimpleNamespace(sync_test_context_from_provider_data=sync, reset_test_context=_TEST.reset)
    monkeypatch.setitem(sys.modules, "ogx", types.ModuleType("ogx"))
    monkeypatch.setitem(sys.modules, "ogx.core", types.ModuleType("ogx.core"))
    monkeypatch.setitem(sys.modules, "ogx.core.testing_context", testing)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "ogx.testing", types.ModuleType("ogx.testing"))
    monkeypatch.setitem(
        sys.modules,
        "ogx.testing.api_recorder",
        types.SimpleNamespace(setup_api_recording=recorder),  # type: ignore[arg-type]
    )


def test_off_without_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OGX_TEST_INFERENCE_MODE", raising=False)
    monkeypatch.delenv("LLAMA_STACK_TEST_INFERENCE_MODE", raising=False)
    _install(monkeypatch, lambda: pytest.fail("the recorder was set up"))
    assert _test_recording.start() is None


def test_on_with_it_and_each_call_is_its_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGX_TEST_INFERENCE_MODE", "replay")
    recorder = _Recorder()
    _install(monkeypatch, lambda: recorder)
    recording = _test_recording.start()
    assert recording is not None and recorder.entered == 1
    data_token = _DATA.set({"__test_id": "tests/test_x.py::test_y"})
    leave = recording.enter_call()
    assert _TEST.get() == "tests/test_x.py::test_y"
    assert leave is not None
    leave()
    assert _TEST.get() is None
    _DATA.reset(data_token)
    assert recording.enter_call() is None  # a call that names no test


def test_live_mode_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OGX_TEST_INFERENCE_MODE", "live")
    _install(monkeypatch, lambda: None)  # OGX's setup_api_recording() in live mode
    assert _test_recording.start() is None


def test_an_env_without_what_the_recorder_imports_stays_off_and_says_what_to_add(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OGX_TEST_INFERENCE_MODE", "replay")

    def needs_aiohttp() -> Any:
        raise ModuleNotFoundError("No module named 'aiohttp'", name="aiohttp")

    _install(monkeypatch, needs_aiohttp)
    caplog.set_level(logging.WARNING, "hostel_sdk._test_recording")
    assert _test_recording.start() is None
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "OGX_TEST_INFERENCE_MODE=replay" in warning and "'aiohttp'" in warning and "pip_packages" in warning
