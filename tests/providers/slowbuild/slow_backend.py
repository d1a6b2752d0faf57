"""A build backend that takes SLOWBUILD_SECONDS (default 30) to build: lets tests interrupt an env build."""

import os
import time

from hatchling.build import *  # noqa: F403 - re-export the real backend's hooks
from hatchling.build import build_wheel as _build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    marker = os.environ.get("SLOWBUILD_MARKER")
    if marker:
        with open(marker, "w") as out:
            out.write(str(os.getpid()))
    time.sleep(float(os.environ.get("SLOWBUILD_SECONDS", "30")))
    return _build_wheel(wheel_directory, config_settings, metadata_directory)
