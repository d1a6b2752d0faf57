"""hostel_sdk._llama_stack: what a provider must implement is what its server's own compliance check requires."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from hostel_sdk import _llama_stack


def _routed(level: str) -> Any:
    def method(self: Any) -> None: ...

    method.__webmethods__ = [types.SimpleNamespace(level=level)]  # type: ignore[attr-defined]
    return method


class _Inference:
    served = _routed("v1")
    alpha = _routed("v1alpha")

    def unrouted(self) -> None:
        """OGX 1.x: its APIs are FastAPI routers, and no protocol method carries ``__webmethods__``."""


class _Provider:
    pass


@pytest.mark.parametrize("package", ["llama_stack_api", "ogx_api"])
def test_only_methods_the_server_serves_as_non_alpha_routes_are_required(
    package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "llama_stack_api", raising=False)
    monkeypatch.delitem(sys.modules, "ogx_api", raising=False)
    monkeypatch.setitem(sys.modules, package, types.SimpleNamespace(InferenceProvider=_Inference))
    assert _llama_stack.missing_methods(_Provider(), "inference") == ["served"]

    class Complete:
        def served(self) -> None: ...

    assert _llama_stack.missing_methods(Complete(), "inference") == []


def test_nothing_is_required_of_a_provider_that_imported_no_api_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "llama_stack_api", raising=False)
    monkeypatch.delitem(sys.modules, "ogx_api", raising=False)
    assert _llama_stack.missing_methods(_Provider(), "inference") == []
