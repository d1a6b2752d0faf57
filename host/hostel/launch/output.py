"""The level a worker's stderr line is logged at (``hostel.provider.<id>``).

A line that starts with a level name (the worker's own ``logging`` format) is logged at that level; the lines
that continue it (indented: a stack under a warning) go with it. A traceback (``Traceback (most recent call
last):``, a dying thread's ``Exception in thread ...:``) is an error the provider did not catch: every line of
it, through its final ``SomeError: message`` line and any chained tracebacks, is a WARNING, so that it is
shown whole even where a provider's ordinary output (``print()``, INFO logs) is quieted.
"""

from __future__ import annotations

import logging

LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
          "CRITICAL": logging.CRITICAL}  # fmt: skip
_TRACEBACK_STARTS = ("Traceback (most recent call last):", "Exception in thread ", "Exception ignored in")
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")


class StderrLevels:
    """Reads one worker's stderr line by line and says each line's level."""

    def __init__(self) -> None:
        self._level = logging.INFO  # of the record the next indented line continues
        self._in_traceback = False

    def level(self, line: str) -> int:
        """The level to log ``line`` at."""
        if line.startswith(_TRACEBACK_STARTS) or line.startswith(_CHAINED):
            self._in_traceback, self._level = True, logging.WARNING
            return logging.WARNING
        if line[:1].isspace() or not line:
            return self._level  # a continuation: the stack under a record, a frame of a traceback
        if self._in_traceback:
            self._in_traceback = False  # the exception's own line ends it; its level stays for what follows
            return logging.WARNING
        name = line.partition(" ")[0]
        self._level = LEVELS.get(name, logging.INFO)
        return self._level
