"""gRPC's poller is chosen before grpc is imported: by the host, by every worker, and never over the user."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hostel_sdk import _grpc_env
from hostel_sdk._grpc_env import EXPERIMENTS, EXPERIMENTS_ENV, OPT_OUT_ENV, TESTED


def _chosen(monkeypatch: pytest.MonkeyPatch, version: tuple[int, int] | None, **environ: str) -> str | None:
    for name in (EXPERIMENTS_ENV, OPT_OUT_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "grpc", raising=False)  # as in a process that has not imported it yet
    monkeypatch.setattr(_grpc_env, "installed_grpcio", lambda: version)
    _grpc_env.prefer_epoll_polling()
    return os.environ.get(EXPERIMENTS_ENV)


def test_a_grpcio_it_was_measured_with_gets_the_epoll_poller(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _chosen(monkeypatch, TESTED[0]) == EXPERIMENTS
    assert _chosen(monkeypatch, TESTED[1]) == EXPERIMENTS


def test_another_grpcio_keeps_its_defaults_even_when_the_host_passed_its_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    newer = (TESTED[1][0], TESTED[1][1] + 1)
    assert _chosen(monkeypatch, newer) is None
    assert _chosen(monkeypatch, (1, 59)) is None
    assert _chosen(monkeypatch, None) is None  # its version could not be read
    assert _chosen(monkeypatch, newer, GRPC_EXPERIMENTS=EXPERIMENTS) is None  # a host's choice, inherited


def test_the_users_choice_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _chosen(monkeypatch, TESTED[1], GRPC_EXPERIMENTS="-event_engine_dns") == "-event_engine_dns"
    assert _chosen(monkeypatch, TESTED[1], HOSTEL_GRPC_EXPERIMENTS="default") is None


def test_once_grpc_is_imported_nothing_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXPERIMENTS_ENV, raising=False)
    import grpc  # noqa: F401 - what makes the setting too late

    _grpc_env.prefer_epoll_polling()
    assert EXPERIMENTS_ENV not in os.environ


def test_the_installed_grpcio_version_is_read_without_importing_it() -> None:
    import grpc

    major, minor = (int(part) for part in grpc.__version__.split(".")[:2])
    assert _grpc_env.installed_grpcio() == (major, minor)


@pytest.mark.parametrize("module", ["hostel", "hostel_sdk.worker"])
def test_the_host_and_the_worker_choose_before_they_import_grpc(module: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in (EXPERIMENTS_ENV, OPT_OUT_ENV)}
    probe = (
        f"import sys, os, {module}\n"
        "from hostel_sdk import _grpc_env as g\n"
        "v = g.installed_grpcio()\n"
        "expected = g.EXPERIMENTS if v and g.TESTED[0] <= v <= g.TESTED[1] else None\n"
        "print(os.environ.get('GRPC_EXPERIMENTS') == expected, 'grpc' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True" if module == "hostel_sdk.worker" else "False"]
    assert "Unknown experiment" not in done.stderr
