"""Provider environments: what determines one (``spec``), where they live and how they are kept (``store``:
``EnvManager``), the installers that build them (``process``), the interpreters (``interpreters``), the wheels
built for them (``sdkwheel``, ``localwheels``), locks (``lock``, ``hashes``) and container images (``image``).
Knows nothing of workers, calls or front doors.
"""

from __future__ import annotations

from hostel.envs.builder import installed_distributions
from hostel.envs.store import (
    BUILD_CONCURRENCY,
    LAST_USED_FILE,
    METADATA_FILE,
    Env,
    EnvManager,
    InstallerName,
    default_home,
    dir_size,
    iter_envs,
)

__all__ = [
    "BUILD_CONCURRENCY", "LAST_USED_FILE", "METADATA_FILE", "Env", "EnvManager", "InstallerName", "default_home",
    "dir_size", "installed_distributions", "iter_envs",
]  # fmt: skip
