"""hostel_sdk._llama_stack: what a provider must implement is what its protocol leaves abstract, bar alpha methods;
what its deps offer and answer is what the API's protocol declares, in the provider's own Llama Stack."""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from hostel_sdk import _llama_stack
from hostel_sdk._deps import ApiProxy


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


class Chunk(BaseModel):
    id: str
    finish_reason: Literal["stop", "length"]


class Conversation(BaseModel):
    id: str
    items: list[str] = []


class _RouterInference:
    """What a provider's deps answer for inference: the API's protocol (a router implements it)."""

    async def openai_chat_completion(self, params: Any) -> Chunk | AsyncIterator[Chunk]: ...


class _Conversations:
    """An API the server serves itself, which a provider reaches only through deps."""

    async def get_conversation(self, conversation_id: str) -> Conversation: ...


class _Client:
    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls: list[tuple[str, str]] = []

    async def call(self, api: str, method: str, args: Any, kwargs: Any) -> Any:
        self.calls.append((api, method))
        return self.value


@pytest.fixture
def ogx(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delitem(sys.modules, "llama_stack_api", raising=False)
    module = types.SimpleNamespace(Inference=_RouterInference, Conversations=_Conversations)
    monkeypatch.setitem(sys.modules, "ogx_api", module)
    _llama_stack._deps_types.cache_clear()
    yield
    _llama_stack._deps_types.cache_clear()


@pytest.mark.usefixtures("ogx")
async def test_deps_results_and_stream_items_come_back_as_the_protocols_types_or_as_sent() -> None:
    conversation = ApiProxy(_Client({"id": "c1", "items": ["a"]}), "conversations")  # type: ignore[arg-type]
    assert await conversation.get_conversation("c1") == Conversation(id="c1", items=["a"])
    decode = _llama_stack.item_decoder("inference", "openai_chat_completion")
    assert decode is not None
    assert decode(b'{"id": "x", "finish_reason": "stop"}') == Chunk(id="x", finish_reason="stop")
    unfit = decode(b'{"id": "y", "finish_reason": null, "choices": [{"delta": {"content": "hi"}}]}')
    assert unfit.id == "y" and unfit.choices[0].delta.content == "hi"  # the OpenAI SDK's chunk, read by attribute


async def test_deps_have_the_methods_of_the_servers_objects_and_nothing_else_of_them() -> None:
    client = _Client(None)
    # What the bridge tells the worker its inference router has: OGX's conversations service has sync_items, which
    # its Conversations protocol does not declare and its responses provider calls.
    inference = ApiProxy(client, "inference", frozenset({"openai_chat_completion", "sync_items"}))  # type: ignore[arg-type]
    assert callable(inference.openai_chat_completion) and callable(inference.sync_items)
    # OGX's interactions provider asks its inference router for the routing table, and translates without one.
    assert getattr(inference, "routing_table", None) is None and not hasattr(inference, "get_provider_impl")
    with pytest.raises(AttributeError, match=r"inference API has no method 'routing_table'"):
        inference.routing_table  # noqa: B018
    assert client.calls == []
    assert callable(ApiProxy(client, "inference").routing_table)  # type: ignore[arg-type]  # methods unknown: any


async def test_without_llama_stack_deps_take_any_method_and_answer_plain_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "llama_stack_api", raising=False)
    monkeypatch.delitem(sys.modules, "ogx_api", raising=False)
    client = _Client({"id": "c1"})
    proxy = ApiProxy(client, "conversations")  # type: ignore[arg-type]
    assert await proxy.anything_at_all() == {"id": "c1"} and type(await proxy.other()) is dict
    assert client.calls == [("conversations", "anything_at_all"), ("conversations", "other")]
