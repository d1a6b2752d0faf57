"""The ``hostel`` command: ``main`` (commands, exit codes), with the env commands (``envs``), spec extraction
(``specs``) and log set-up (``log_setup``). Uses the ``Host``'s public API only; only this layer exits.
"""

from __future__ import annotations

from hostel.cli.main import main

__all__ = ["main"]
