"""``HOSTEL_LOG_FORMAT=json``: one JSON object per line, with the provider's id and the current trace."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from hostel.cli.log_setup import JsonFormatter
from tests.conftest import make_config


def test_a_line_carries_the_current_trace_and_the_providers_id() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hostel.provider.ollama")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with TracerProvider().get_tracer("test").start_as_current_span("call") as span:
            logger.warning("upstream is slow: %s ms", 900)
        logger.error("no span now")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["message"] == "upstream is slow: 900 ms" and inside["provider_id"] == "ollama"
    assert inside["trace_id"] == format(context.trace_id, "032x") and inside["span_id"] == format(
        context.span_id, "016x"
    )
    assert inside["level"] == "WARNING" and inside["time"].endswith("+00:00")
    assert "trace_id" not in outside


def test_the_cli_logs_json_lines_the_workers_included(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "hostel", "call", str(config), "t", "greet", "--args", '{"name": "x"}'],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "HOSTEL_LOG_FORMAT": "json", "HOSTEL_LOG": "debug"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert any(line.get("provider_id") == "t" for line in lines), lines  # the worker's own lines, relayed
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


def test_a_workers_stderr_lines_get_their_records_level_and_tracebacks_are_warnings_whole() -> None:
    from hostel.launch.output import StderrLevels

    lines = [
        ("print: hello", logging.INFO),
        ("INFO my_provider: log: hello", logging.INFO),
        ("WARNING hostel_sdk._watchdog: provider p: event loop blocked for 10 s in:", logging.WARNING),
        ('  File "prov.py", line 9, in block', logging.WARNING),  # the stack under that warning
        ("Exception in thread worker-1:", logging.WARNING),
        ("Traceback (most recent call last):", logging.WARNING),
        ('  File "prov.py", line 3, in run', logging.WARNING),
        ("RuntimeError: thread died", logging.WARNING),  # its last line too
        ("", logging.WARNING),
        ("During handling of the above exception, another exception occurred:", logging.WARNING),
        ("", logging.WARNING),
        ("Traceback (most recent call last):", logging.WARNING),
        ("ValueError: again", logging.WARNING),
        ("done", logging.INFO),  # and then ordinary output again
        ("DEBUG urllib3: connecting", logging.DEBUG),
    ]
    levels = StderrLevels()
    assert [(line, levels.level(line)) for line, _ in lines] == lines
