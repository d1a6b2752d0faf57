"""hostel_sdk._llama_stack: what a provider must implement is what its protocol leaves abstract, bar alpha methods."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from hostel_sdk import _llama_stack


def _routed(level: str) -> Any:
    async def method(self: Any) -> None: ...

    method.__webmethods__ = [types.SimpleNamespace(level=level)]  # type: ignore[attr-defined]
    return method


class _Inference:
    served = _routed("v1")
    alpha = _routed("v1alpha")  # Llama Stack's compliance check skips these

    async def unrouted(self) -> None:
        """Llama Stack 0.7 and OGX 1.x mark no protocol method as a route: abstract all the same."""

    def sync_stub(self, x: int) -> int:
        pass  # type: ignore[return-value]

    async def rerank(self, request: Any) -> Any:
        """OGX 1.5's: the protocol answers it itself, so a provider need not (its remote::ollama does not)."""
        raise NotImplementedError("Reranking is not implemented")


class _Provider:
    pass


@pytest.fixture(params=["llama_stack_api", "ogx_api"])
def api_package(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "llama_stack_api", raising=False)
    monkeypatch.delitem(sys.modules, "ogx_api", raising=False)
    monkeypatch.setitem(sys.modules, request.param, types.SimpleNamespace(InferenceProvider=_Inference))


@pytest.mark.usefixtures("api_package")
def test_the_methods_the_protocol_leaves_abstract_are_required_bar_alpha_ones() -> None:
    assert _llama_stack.missing_methods(_Provider(), "inference") == ["served", "sync_stub", "unrouted"]

    class Complete:
        async def served(self) -> None: ...
        async def unrouted(self) -> None: ...
        def sync_stub(self, x: int) -> int:
            return x

    assert _llama_stack.missing_methods(Complete(), "inference") == []


def test_nothing_is_required_of_a_provider_that_imported_no_api_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "llama_stack_api", raising=False)
    monkeypatch.delitem(sys.modules, "ogx_api", raising=False)
    assert _llama_stack.missing_methods(_Provider(), "inference") == []
