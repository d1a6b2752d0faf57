"""OGX's (and Llama Stack's) recorded-inference test mode, in a worker as in its server.

With ``OGX_TEST_INFERENCE_MODE`` set (``LLAMA_STACK_TEST_INFERENCE_MODE`` for Llama Stack), the server records or
replays what its providers send to model backends, test by test: a request names its test in its provider data
(``__test_id``), the server's middleware makes it the current test, and the recorder files each exchange under it.
A worker whose environment has the same setting does the same, so that a provider hosted by hostel replays what it
would replay in the server's process (the bridge passes the server's setting on: docs/llama-stack-bridge.md).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# (package, prefix of its test settings), newest first.
_DISTRIBUTIONS = (("ogx", "OGX"), ("llama_stack", "LLAMA_STACK"))


class Recording:
    """The recorder, on for the rest of the process; ``enter_call`` makes a call's test the current one."""

    def __init__(self, recorder: Any, sync: Callable[[], Any], reset: Callable[[Any], None]) -> None:
        self._recorder = recorder  # kept: leaving it would undo the recorder's patches
        self._sync = sync
        self._reset = reset

    def enter_call(self) -> Callable[[], None] | None:
        """Make the test named by the call's provider data (already current) the current test; what undoes it."""
        token = self._sync()
        if token is None:
            return None
        return lambda: self._reset(token)


def start() -> Recording | None:
    """Turn the recorder on if this process's environment asks for it and the provider's server package has one.

    The recorder imports the clients it patches (OGX 1.5's: aiohttp, and pypdf's and Tavily's providers): in an env
    without one of them it stays off, with a warning that says what to add, because a provider that calls no model
    (a file store) needs no recording, and in process the server's own test install has them all.
    """
    for package, prefix in _DISTRIBUTIONS:
        setting = f"{prefix}_TEST_INFERENCE_MODE"
        if setting not in os.environ:
            continue
        try:
            testing = importlib.import_module(f"{package}.core.testing_context")
        except ModuleNotFoundError:
            continue  # not this server's package
        try:
            recorder = importlib.import_module(f"{package}.testing.api_recorder").setup_api_recording()
            if recorder is None:  # "live": nothing to record or replay
                return None
            recorder.__enter__()
        except ModuleNotFoundError as exc:
            logger.warning(
                "%s=%s, but %s's test recorder is off in this worker: it imports %r, which this env lacks; if the "
                "provider calls a model, add that package to its pip_packages",
                setting, os.environ[setting], package, (exc.name or str(exc)).split(".")[0],
            )  # fmt: skip
            return None
        logger.info("%s's test recording is on: %s=%s", package, setting, os.environ[setting])
        return Recording(recorder, testing.sync_test_context_from_provider_data, testing.reset_test_context)
    return None
