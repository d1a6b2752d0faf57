"""Where workers run. ``base`` is the seam the supervisor types against (``WorkerHandle``, ``WorkerLauncher``,
``LaunchContext``); ``process`` (the default: a child process in the provider's venv), ``container`` (the
provider's image under podman or docker) and ``ray_launcher`` (a Ray actor's child, possibly on another
machine) implement it; ``child`` is the child process itself, whatever runs in it. Knows nothing of
calls, routing or front doors.
"""

from __future__ import annotations

from hostel.config import Launcher
from hostel.launch.base import LaunchContext, WorkerLauncher
from hostel.launch.process import ProcessLauncher

__all__ = ["Launchers"]


class Launchers:
    """The launchers one host uses, made on first use and closed together."""

    def __init__(self, context: LaunchContext) -> None:
        self.context = context
        self._made: dict[Launcher, WorkerLauncher] = {}

    def get(self, kind: Launcher) -> WorkerLauncher:
        """The launcher of that kind."""
        if kind not in self._made:
            self._made[kind] = self._make(kind)
        return self._made[kind]

    def _make(self, kind: Launcher) -> WorkerLauncher:
        if kind == "container":
            from hostel.launch.container import ContainerLauncher

            return ContainerLauncher(self.context)
        if kind == "ray":
            from hostel.launch.ray_launcher import RayLauncher  # imports ray only when a provider uses it

            launcher: WorkerLauncher = RayLauncher(self.context)
            return launcher
        return ProcessLauncher(self.context)

    async def close(self) -> None:
        """Close every launcher made."""
        made, self._made = self._made, {}
        for launcher in made.values():
            await launcher.close()
