"""Log levels from ``HOSTEL_LOG`` (``debug``, ``hostel.provider.ollama=debug,info``) and ``LLAMA_STACK_LOGGING``;
``HOSTEL_LOG_FORMAT=json`` for one JSON object per line, with the trace and span ids of the current span.

Only the CLI calls this: the library never configures logging.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

_PROVIDER_LOGGER = "hostel.provider."


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}``, plus ``provider_id`` for a provider's own lines (its relayed
    stderr, its lifecycle), ``trace_id``/``span_id`` when a span is current, ``exception`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name.startswith(_PROVIDER_LOGGER):
            entry["provider_id"] = record.name[len(_PROVIDER_LOGGER) :]
        entry.update(_trace_ids())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _trace_ids() -> dict[str, str]:
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


def parse_levels(text: str) -> tuple[str | None, dict[str, str]]:
    """``"info,hostel.provider.x=debug"`` -> (``"INFO"``, ``{"hostel.provider.x": "DEBUG"}``); ``;`` also separates."""
    default: str | None = None
    levels: dict[str, str] = {}
    for raw in text.replace(";", ",").split(","):
        part = raw.strip()
        if not part:
            continue
        name, sep, level = part.partition("=")
        if sep:
            levels[name.strip()] = level.strip().upper()
        else:
            default = name.upper()
    return default, levels


def configure(*, debug: bool = False, environ: Mapping[str, str] | None = None, lifecycle: bool = False) -> None:
    """Set up stderr logging for the CLI."""
    environ = os.environ if environ is None else environ
    default, levels = parse_levels(environ.get("LLAMA_STACK_LOGGING", ""))
    hostel_default, hostel_levels = parse_levels(environ.get("HOSTEL_LOG", ""))
    default = hostel_default or default or ("DEBUG" if debug else "WARNING")
    levels.update(hostel_levels)
    logging.basicConfig(
        level=default if default in logging.getLevelNamesMapping() else "WARNING",
        format="%(levelname)s %(name)s: %(message)s",
    )
    if environ.get("HOSTEL_LOG_FORMAT", "").lower() == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    if lifecycle and not hostel_default and not debug:
        # A server says when workers start, crash, restart, and shows what providers print and log at INFO
        # (HOSTEL_LOG=hostel.provider=warning quiets them; their tracebacks are WARNINGs, shown whole).
        logging.getLogger("hostel").setLevel(logging.INFO)
    if not lifecycle and not hostel_default and not debug:
        # A one-shot command's error line says what the provider raised; --debug adds the worker's traceback.
        logging.getLogger("hostel.calls").setLevel(logging.ERROR)
    for name, level in levels.items():
        if level in logging.getLevelNamesMapping():
            logging.getLogger(name).setLevel(level)
