"""The bridge gives a worker the server's test-recording settings, beside what its entry's ``env`` gives it."""

from __future__ import annotations

import types
from typing import Any

import pytest

from hostel.bridge._adapter import _pass_env
from hostel.bridge._server import Server


@pytest.mark.parametrize(
    ("core", "expected"),
    [
        ("ogx", ["OGX_TEST_INFERENCE_MODE", "OGX_TEST_RECORDING_DIR"]),
        ("llama_stack", ["LLAMA_STACK_TEST_INFERENCE_MODE"]),
    ],
)
def test_the_servers_own_test_settings_and_no_others(
    core: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in [
        ("OGX_TEST_INFERENCE_MODE", "replay"),
        ("OGX_TEST_RECORDING_DIR", "/recordings"),
        ("LLAMA_STACK_TEST_INFERENCE_MODE", "record"),
        ("OGX_TESTING", "not a test setting"),
    ]:
        monkeypatch.setenv(name, value)
    assert Server("server", core, types.ModuleType("api")).test_settings() == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, ["A", "B"]),
        (["KEY", "A"], ["KEY", "A", "B"]),
        ({"KEY": "v", "A": "mine"}, {"A": "mine", "B": None, "KEY": "v"}),
    ],
)
def test_passed_beside_what_the_entry_says_which_wins(env: Any, expected: Any) -> None:
    entry: dict[str, Any] = {"provider_id": "p"} if env is None else {"provider_id": "p", "env": env}
    _pass_env(entry, ["A", "B"])
    assert entry["env"] == expected


def test_nothing_changes_without_settings() -> None:
    entry: dict[str, Any] = {"provider_id": "p"}
    _pass_env(entry, [])
    assert entry == {"provider_id": "p"}
