"""``--env-file``: variables for ``${env.…}`` and for workers' ``env:``, read from a ``.env`` file.

Its values win over the host's own environment, and it is read again on every reload, so that a key
rotated in the file reaches the providers that use it without a restart.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from hostel.errors import ConfigError, Problem


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of a ``.env`` file (quotes, ``export`` and comments as usual); ``ConfigError``
    naming the file if it cannot be read. A name without a value is left out."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(
            [Problem(str(file), "", f"cannot read the env file ({exc.strerror or exc}); check the --env-file path")]
        ) from None
    values = dotenv_values(stream=io.StringIO(text))
    return {name: value for name, value in values.items() if value is not None}


def environ_with(env_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: the process's) with the env file's values over it."""
    base = dict(os.environ if environ is None else environ)
    return {**base, **read_env_file(env_file)} if env_file is not None else base
