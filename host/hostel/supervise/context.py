"""What every provider under supervision shares: ``SupervisorContext``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hostel.config import HostelSettings
from hostel.config.plan import ProviderPlan
from hostel.envs import EnvManager
from hostel.launch.base import LaunchContext
from hostel.transport.callbacks import CallbackServer
from hostel.transport.channel import Channel


@dataclass(frozen=True)
class SupervisorContext:
    """What every provider shares: settings, the env manager, the socket directory, the callback service."""

    settings: HostelSettings
    envs: EnvManager
    socket_dir: Path
    log_level: str = "WARNING"
    callbacks: CallbackServer | None = None
    external_apis: frozenset[str] = frozenset()  # APIs served outside the host, which providers may depend on
    base_dir: Path | None = None  # the run config's directory: relative paths in its settings resolve against it
    # Run on every new worker before it serves (the host tells it of the resources its provider owns).
    prime: Callable[[ProviderPlan, Channel], Awaitable[None]] | None = None

    def launch_context(self) -> LaunchContext:
        """What the launchers need of this context."""
        return LaunchContext(
            self.settings, self.socket_dir, self.log_level, self.callbacks, self.base_dir or Path.cwd()
        )
