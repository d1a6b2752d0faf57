"""hostel.supervise.call_log: what the host logs about a call that failed, once per call."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hostel.errors import CallTimeoutError, MethodNotFoundError, RemoteError
from hostel.supervise.call_log import log_failed_call, next_call_id


def test_a_provider_exception_is_a_warning_with_its_remote_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "hostel.calls")
    raised = RemoteError(
        provider_id="p", method="lookup", type_name="KeyError", message="'x'",
        remote_traceback='Traceback (most recent call last):\n  File "prov.py", line 3, in lookup\nKeyError: \'x\'\n',
    )  # fmt: skip
    log_failed_call("p", "lookup", 7, raised)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("provider p: lookup() raised KeyError: 'x' [call 7]\nTraceback")
    assert 'File "prov.py", line 3, in lookup' in record.getMessage()


def test_other_failures_are_one_info_line_and_a_cancelled_call_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "hostel.calls")
    log_failed_call("p", "slow", 8, CallTimeoutError("call slow() on provider 'p' timed out", provider_id="p"))
    log_failed_call("p", "nope", 9, MethodNotFoundError(provider_id="p", method="nope", type_name="", message="no"))
    log_failed_call("p", "gone", 10, asyncio.CancelledError())
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels == [
        (logging.INFO, "provider p: slow() failed: CallTimeoutError: call slow() on provider 'p' timed out [call 8]"),
        (logging.INFO, "provider p: nope() failed: MethodNotFoundError: provider 'p': no [call 9]"),
    ]
    assert next_call_id() < next_call_id()


def test_a_missing_module_says_to_add_its_package_and_nothing_else_does(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "hostel.calls")
    missing = RemoteError(
        provider_id="p", method="search", type_name="ModuleNotFoundError", message="No module named 'numpy.linalg'"
    )
    log_failed_call("p", "search", 11, missing)
    other = RemoteError(provider_id="p", method="search", type_name="ValueError", message="x")
    log_failed_call("p", "search", 12, other)
    first, second = (r.getMessage() for r in caplog.records)
    remedy = "(its env has no module 'numpy': add the package that provides it to the provider's pip_packages)"
    assert first == (
        f"provider p: search() raised ModuleNotFoundError: No module named 'numpy.linalg' {remedy} [call 11]"
    )
    assert remedy in str(missing)
    assert second == "provider p: search() raised ValueError: x [call 12]"
    assert "pip_packages" not in str(other)
