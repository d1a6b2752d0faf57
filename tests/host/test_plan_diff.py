"""What a reload sees: the difference between two plans, the env file, and the new lifecycle settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostel.config.diff import diff_plans
from hostel.config.envfile import environ_with, read_env_file
from hostel.config.plan import load_plan
from hostel.errors import ConfigError
from tests.conftest import make_config, provider_spec

SPECS = {"inline/tool_runtime/testprov": provider_spec(), "inline/inference/testprov": provider_spec()}


def _plan(tmp_path: Path, providers: dict[str, Any], environ: dict[str, str] | None = None, **top: Any) -> Any:
    return load_plan(make_config(tmp_path, specs=SPECS, providers=providers, **top), environ=environ or {})


def _entry(provider_id: str, **keys: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "provider_type": "inline::testprov", **keys}


def test_each_kind_of_change_is_told_apart(tmp_path: Path) -> None:
    old = _plan(
        tmp_path,
        {
            "tool_runtime": [
                _entry("same"),
                _entry("config", config={"greeting": "hi"}),
                _entry("limits"),
                _entry("gone"),
            ]
        },
        models=[{"model_id": "m", "provider_id": "same"}],
    )
    new = _plan(
        tmp_path,
        {
            "tool_runtime": [
                _entry("same"),
                _entry("config", config={"greeting": "hello"}),
                _entry("limits", limits={"max_concurrent_calls": 8}, start="lazy", idle_stop_s=30),
                _entry("new"),
            ]
        },
        models=[{"model_id": "m2", "provider_id": "same"}],
        hostel={"call_timeout_s": 5},
    )
    diff = diff_plans(old, new)
    assert diff.added == ("new",) and diff.removed == ("gone",) and diff.unchanged == ("same",)
    assert diff.replaced == {"config": ("config",)}  # its worker must be made again
    assert set(diff.updated["limits"]) == {"max_concurrent_calls", "start", "idle_stop_s"}  # same worker
    assert diff.models_changed and diff.needs_restart == ("hostel.call_timeout_s",)


def test_a_rotated_secret_is_a_change_but_a_neighbours_is_not(tmp_path: Path) -> None:
    providers = {"tool_runtime": [_entry("a", env=["API_KEY"]), _entry("b", config={"key": "${env.B_KEY}"})]}
    old = _plan(tmp_path, providers, {"API_KEY": "one", "B_KEY": "x"})
    assert dict(old.provider("a").worker.env) == {"API_KEY": "one"}
    assert diff_plans(old, _plan(tmp_path, providers, {"API_KEY": "two", "B_KEY": "x"})).replaced == {"a": ("env",)}
    assert diff_plans(old, _plan(tmp_path, providers, {"API_KEY": "one", "B_KEY": "y"})).replaced == {"b": ("config",)}
    assert diff_plans(old, _plan(tmp_path, providers, {"API_KEY": "one", "B_KEY": "x", "OTHER": "z"})).replaced == {}


def test_the_env_file_wins_over_the_environment_and_a_missing_one_is_named(tmp_path: Path) -> None:
    env_file = tmp_path / "secrets.env"
    env_file.write_text('# keys\nexport API_KEY="from file"\nEMPTY=\nNAME_ONLY\n')
    assert read_env_file(env_file) == {"API_KEY": "from file", "EMPTY": ""}
    assert environ_with(env_file, {"API_KEY": "from env", "HOME": "/h"}) == {
        "API_KEY": "from file",
        "EMPTY": "",
        "HOME": "/h",
    }
    with pytest.raises(ConfigError, match=r"missing\.env.*--env-file"):
        read_env_file(tmp_path / "missing.env")


def test_lazy_settings_and_max_running_are_checked(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        {"tool_runtime": [_entry("a"), _entry("b", start="eager", idle_stop_s=5)]},
        hostel={"start": "lazy", "idle_stop_s": 60, "max_running": 1},
    )
    assert (plan.provider("a").policy.start, plan.provider("a").policy.idle_stop_s) == ("lazy", 60)
    assert (plan.provider("b").policy.start, plan.provider("b").policy.idle_stop_s) == ("eager", 5)
    with pytest.raises(ConfigError, match=r"max_running: is 1, but 2 providers start with the host"):
        _plan(tmp_path, {"tool_runtime": [_entry("a"), _entry("b")]}, hostel={"max_running": 1})
    with pytest.raises(ConfigError, match="start"):
        _plan(tmp_path, {"tool_runtime": [_entry("a", start="sometimes")]})


def test_replicas_are_policy_and_zygote_replaces_the_workers(tmp_path: Path) -> None:
    old = _plan(tmp_path, {"tool_runtime": [_entry("a"), _entry("b")]})
    new = _plan(tmp_path, {"tool_runtime": [_entry("a", replicas=3), _entry("b")]}, hostel={"zygote": False})
    diff = diff_plans(old, new)
    assert dict(diff.updated) == {} and set(diff.replaced) == {"a", "b"}  # zygote: how every worker starts
    assert diff.replaced["a"] == ("zygote",) and diff.needs_restart == ()  # its resize follows the replacement
    resized = diff_plans(old, _plan(tmp_path, {"tool_runtime": [_entry("a", replicas=3), _entry("b")]}))
    assert dict(resized.updated) == {"a": ("replicas",)} and not resized.replaced  # a resize, in place
