"""Log levels from ``HOSTEL_LOG`` (``debug``, ``hostel.provider.ollama=debug,info``) and ``LLAMA_STACK_LOGGING``.

Only the CLI calls this: the library never configures logging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping


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
    if lifecycle and not hostel_default and not debug:
        logging.getLogger("hostel").setLevel(logging.INFO)  # a server says when workers start, crash, restart
        logging.getLogger("hostel.provider").setLevel(logging.WARNING)  # but providers' own chatter stays quiet
    for name, level in levels.items():
        if level in logging.getLevelNamesMapping():
            logging.getLogger(name).setLevel(level)
