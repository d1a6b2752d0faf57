"""Which provider methods callers may call: the API protocol's (or public functions), plus expose, never lifecycle."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from hostel_sdk._exposure import callable_name, exposed_methods


class Provider:
    def __init__(self) -> None:
        self.callback = lambda: "a callable attribute, not a method"
        self.client = Provider.Client()

    class Client:
        def __call__(self) -> str:
            return "a callable object"

    async def openai_chat_completion(self) -> str:
        return "api"

    async def helper(self) -> str:
        return "helper"

    async def register_model(self, model: Any) -> Any:
        return model

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    def close(self) -> None:
        pass

    @staticmethod
    def version() -> str:
        return "1"

    async def _private(self) -> None:
        pass


def test_without_a_protocol_public_functions_minus_lifecycle() -> None:
    assert sorted(exposed_methods(Provider())) == ["helper", "openai_chat_completion", "register_model", "version"]


def test_expose_adds_methods_but_never_lifecycle_or_private_ones() -> None:
    methods = exposed_methods(Provider(), expose=["callback", "shutdown", "_private", "missing"])
    assert sorted(methods) == ["callback", "helper", "openai_chat_completion", "register_model", "version"]


@pytest.fixture
def llama_stack_api() -> Iterator[None]:
    class Inference(Protocol):
        async def openai_chat_completion(self) -> Any: ...

        async def shutdown(self) -> None: ...

    class ModelsProtocolPrivate(Protocol):
        async def register_model(self, model: Any) -> Any: ...

    module = types.ModuleType("llama_stack_api")
    module.Inference = Inference  # type: ignore[attr-defined]
    module.ModelsProtocolPrivate = ModelsProtocolPrivate  # type: ignore[attr-defined]
    sys.modules["llama_stack_api"] = module
    yield
    del sys.modules["llama_stack_api"]


@pytest.mark.usefixtures("llama_stack_api")
def test_with_a_protocol_only_its_methods_what_routing_tables_call_and_expose() -> None:
    assert sorted(exposed_methods(Provider(), api="inference")) == ["openai_chat_completion", "register_model"]
    assert sorted(exposed_methods(Provider(), api="inference", expose=["helper"])) == [
        "helper",
        "openai_chat_completion",
        "register_model",
    ]


def test_callable_names() -> None:
    assert callable_name("openai_chat_completion")
    for name in ("", "_x", "__init__", "shutdown", "initialize", "a.b", "a b"):
        assert not callable_name(name), name
