"""What a worker, and the installers and probes that build its env, see of the host's environment.

Not the host's whole environment: in a usual Llama Stack setup it holds every provider's keys (``${env.X}``
in the run config), and a provider must not read its neighbours'. A worker gets a minimal environment, the
names ``hostel.pass_env`` lists, and its own entry's ``env:``; its config (with its secrets) comes on stdin.
Installers and probes, which run a package's build code, get the minimal environment plus the installer's
own variables (index URLs, credentials for the index) and ``hostel.pass_env``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

# What every process needs to find programs, its home, its locale and time zone, the network's proxies
# and the system's certificate authorities.
BASE_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TZDIR",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    }
)  # fmt: skip
BASE_PREFIXES = ("LC_",)
# How gRPC polls (hostel_sdk/_grpc_env.py): the host's choice, or the user's, holds in its workers too.
GRPC_NAMES = frozenset({"GRPC_EXPERIMENTS", "HOSTEL_GRPC_EXPERIMENTS"})
# What installers read: their own settings and index credentials, the caches and config they keep, git.
INSTALLER_NAMES = frozenset(
    {"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "NETRC", "SSH_AUTH_SOCK", "PYENV_ROOT"}
)
INSTALLER_PREFIXES = ("UV_", "PIP_", "GIT_")


def _picked(environ: Mapping[str, str], names: Iterable[str], prefixes: tuple[str, ...]) -> dict[str, str]:
    wanted = set(names)
    return {k: v for k, v in environ.items() if k in wanted or k.startswith(prefixes)}


def worker_environ(
    environ: Mapping[str, str],
    *,
    pass_env: Iterable[str] = (),
    env: Iterable[tuple[str, str | None]] = (),
    tmpdir: Path | None = None,
) -> dict[str, str]:
    """A worker's environment: the minimal one, ``pass_env`` names, and its own ``env`` entries (a value to
    set, or ``None`` to pass the host's value through), with ``TMPDIR`` its private directory."""
    result = _picked(environ, BASE_NAMES | GRPC_NAMES | set(pass_env), BASE_PREFIXES)
    for name, value in env:
        if value is not None:
            result[name] = value
        elif name in environ:
            result[name] = environ[name]
    if tmpdir is not None:
        result["TMPDIR"] = str(tmpdir)
    result["PYTHONUNBUFFERED"] = "1"
    return result


def installer_environ(environ: Mapping[str, str], *, pass_env: Iterable[str] = ()) -> dict[str, str]:
    """The environment of an installer or an import probe: minimal, the installer's own, and ``pass_env``."""
    return _picked(environ, BASE_NAMES | INSTALLER_NAMES | set(pass_env), (*BASE_PREFIXES, *INSTALLER_PREFIXES))
