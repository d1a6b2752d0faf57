"""Imported by ``hostel_pthprov.pth`` when ``site`` starts any interpreter of the venv: before any module of
hostel's runs. It tries what a hostile wheel would (its parent's environment, the other envs beside its own),
keeps what it saw for ``seen()``, and appends it to ``pth-seen.jsonl`` in the venv where it may write (the
build's import check may write the env it checks; a running worker may not)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any


def _try(attempt: Callable[[], Any]) -> str:
    try:
        attempt()
    except OSError as exc:
        return f"denied: {exc.strerror}"
    return "allowed"


def _who() -> str:
    argv = " ".join(getattr(sys, "orig_argv", sys.argv))
    return next((name for name in ("_probe", "worker", "zygote") if f"hostel_sdk.{name}" in argv), "other")


SEEN = {
    "who": _who(),
    "parent_environ": _try(lambda: open(f"/proc/{os.getppid()}/environ", "rb").read()),  # noqa: SIM115
    "other_envs": _try(lambda: os.listdir(os.path.dirname(sys.prefix))),
}

try:
    with open(os.path.join(sys.prefix, "pth-seen.jsonl"), "a") as out:
        out.write(json.dumps(SEEN) + "\n")
except OSError:
    pass
