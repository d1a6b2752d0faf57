"""What workers and installers see of the host's environment."""

from __future__ import annotations

from pathlib import Path

from hostel._environ import installer_environ, worker_environ

HOST = {
    "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_TIME": "de_DE", "HTTPS_PROXY": "http://proxy:3128",
    "SSL_CERT_FILE": "/etc/ssl/ca.pem", "OPENAI_API_KEY": "sk-secret", "PYTHONPATH": "/host/site",
    "UV_INDEX_URL": "https://user:token@index.example/simple", "PIP_INDEX_URL": "https://index.example/simple",
    "XDG_CACHE_HOME": "/home/u/.cache", "VIRTUAL_ENV": "/host/.venv",
}  # fmt: skip


def test_a_worker_gets_the_minimal_environment_and_what_its_entry_names() -> None:
    env = worker_environ(HOST, env=[("OPENAI_API_KEY", None), ("MODE", "fast"), ("ABSENT", None)], tmpdir=Path("/t"))
    assert env == {
        "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_TIME": "de_DE",
        "HTTPS_PROXY": "http://proxy:3128", "SSL_CERT_FILE": "/etc/ssl/ca.pem",
        "OPENAI_API_KEY": "sk-secret", "MODE": "fast", "TMPDIR": "/t", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip


def test_a_worker_gets_the_hosts_grpc_poller_choice() -> None:
    chosen = {"GRPC_EXPERIMENTS": "-event_engine_client", "HOSTEL_GRPC_EXPERIMENTS": "default"}
    env = worker_environ({**HOST, **chosen})
    assert {name: env[name] for name in chosen} == chosen


def test_an_installer_gets_its_own_variables_but_no_provider_secret() -> None:
    env = installer_environ(HOST, pass_env=["LANG"])
    assert env["UV_INDEX_URL"] == HOST["UV_INDEX_URL"] and env["PIP_INDEX_URL"] == HOST["PIP_INDEX_URL"]
    assert env["XDG_CACHE_HOME"] == "/home/u/.cache" and env["PATH"] == "/usr/bin"
    assert "OPENAI_API_KEY" not in env and "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
