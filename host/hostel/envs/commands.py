"""One wrapper for the short-lived commands hostel runs and waits for (installers, interpreter probes); workers,
which it supervises, are `hostel.launch.process`'s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hostel._redact import redact

logger = logging.getLogger(__name__)

# An installer must not outlive a host that is SIGKILLed mid-build: setpriv (util-linux) arms the
# parent-death signal before exec'ing the command. Without it, the next build's cleanup still copes.
SETPRIV: tuple[str, ...] = ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ()


@dataclass(frozen=True)
class Completed:
    """A finished command: its exit code and output."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


async def run(command: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> Completed:
    """Run ``command`` to completion (killing its process group on timeout or cancellation); log it."""
    logger.debug("running: %s", redact(" ".join(command)))
    proc = await asyncio.create_subprocess_exec(
        *SETPRIV,
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        _kill_group(proc.pid)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Completed(tuple(command), proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
