"""How a sandboxed provider's processes start: confined before the first byte of its venv runs.

A wheel may ship a ``.pth`` file, and ``site`` runs its ``import`` lines at interpreter start, before any
module of hostel's could confine the process. So a sandboxed provider's worker, its zygote and its build's
import check start as ``python -S -c SOURCE POLICY MODULE ARGS...``: no ``site``, and ``SOURCE`` is the host's
own copy of ``hostel_sdk._sandbox`` (never the venv's, which a wheel could overwrite) ending in
``confined_main()``. It applies the Landlock domain, ``no_new_privs`` and the rlimits, then imports ``site``
and runs ``MODULE`` as ``python -m`` would. Landlock domains survive ``fork`` and ``execve``: whatever the
provider starts is inside.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hostel_sdk import _sandbox


@functools.cache
def _bootstrap() -> str:
    return inspect.getsource(_sandbox) + "\nconfined_main()\n"


def sandbox_policy(
    sandbox: Mapping[str, Any], *, write: Iterable[str], root: Path | None, sockets: Iterable[str] = ()
) -> dict[str, Any]:
    """A plan's ``sandbox`` as ``hostel_sdk._sandbox.apply`` takes it, for one process: what it may ``write``; and,
    unless the plan says ``unix_sockets: any``, a private root built in ``root`` (``None``: it lives in its
    zygote's) holding only what it may use and ``sockets``."""
    policy = {**sandbox, "write": list(write)}
    if policy.pop("unix_sockets", "own") == "own" and root is not None:
        policy.update(root=str(root), sockets=list(sockets))
    return policy


def confined_command(
    python: str, module: str, args: list[str], *, sandbox: Mapping[str, Any], limits: Mapping[str, Any], failure: str
) -> list[str]:
    """The command that runs ``python -m module *args`` inside ``sandbox`` (``read``, ``write``,
    ``connect_ports``) and ``limits``. ``failure``: the line printed on stdout, ``{message}`` replaced by the
    JSON-quoted reason, when the sandbox cannot be set up here."""
    # Without site, sys.prefix is the base interpreter's until site reads the venv's pyvenv.cfg: name the venv.
    venv = str(Path(python).parent.parent)
    policy = {
        "sandbox": {**sandbox, "read": [*(sandbox.get("read") or ()), venv]},
        "limits": dict(limits),
        "failure": failure,
    }
    return [python, "-S", "-c", _bootstrap(), json.dumps(policy), module, *args]
