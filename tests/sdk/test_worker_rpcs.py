"""The Worker service's RPCs the host does not use for calls (Call, Describe), at the RPC level, as a host
in another language would use them (docs/protocol.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from hostel_sdk import _messages as pb
from hostel_sdk import request_provider_data
from hostel_sdk._start import Listen, StartRequest
from hostel_sdk._wire import TOKEN_METADATA, WithMetadata, token_metadata
from hostel_sdk.testing import serve


class Counter:
    async def count(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def double(self, x: int) -> int:
        return 2 * x

    async def shutdown(self) -> None:
        pass


async def test_call_streams_a_value_or_items_and_describe_lists_callable_methods() -> None:
    async with serve(Counter()) as client:
        stub = client._stub
        kinds = [
            r.WhichOneof("kind") async for r in stub.call(pb.CallRequest(method="double", kwargs_json=b'{"x": 4}'))
        ]
        assert kinds == ["value_json"]
        replies = [r async for r in stub.call(pb.CallRequest(method="count", kwargs_json=b'{"n": 3}'))]
        assert replies[0].WhichOneof("kind") == "stream_begin"
        items = [json.loads(i) for r in replies[1:] for i in r.items.items_json]
        assert items == [0, 1, 2]
        described = await stub.describe(pb.DescribeRequest())
        assert {(m.name, m.streams) for m in described.methods} == {("count", True), ("double", False)}
        assert described.sdk_version and described.python_version  # shutdown is not callable, so not listed


def test_the_start_request_round_trips_and_ignores_what_it_does_not_know() -> None:
    request = StartRequest(
        provider_id="p", api="inference", provider_type="remote::x", kind="remote", module="m",
        deps=("safety",), listen=Listen(host="10.0.0.2"), limits={"open_files": 64},
    )  # fmt: skip
    again = StartRequest.from_json(request.to_json())
    assert again == request and again.listen == Listen(host="10.0.0.2") and again.deps == ("safety",)
    newer = json.loads(request.to_json()) | {"something_new": 1}
    assert StartRequest.from_json(json.dumps(newer)) == request
    try:
        StartRequest.from_json(b'{"provider_id": "p"}')
    except ValueError as exc:
        assert "lacks a field" in str(exc)
    else:
        raise AssertionError("a start request without its required fields was accepted")


def test_a_stub_with_metadata_sends_it_with_every_call_beside_the_calls_own() -> None:
    sent: list[dict[str, object]] = []

    def multicallable(*args: object, **kwargs: object) -> str:
        sent.append({"args": args, **kwargs})
        return "call"

    with_token = WithMetadata(multicallable, token_metadata("t0k"))
    assert with_token("request", timeout=2) == "call"
    with_token("request", metadata=(("x-trace", "1"),))
    assert sent == [
        {"args": ("request",), "metadata": ((TOKEN_METADATA, "t0k"),), "timeout": 2},
        {"args": ("request",), "metadata": ((TOKEN_METADATA, "t0k"), ("x-trace", "1"))},
    ]
    assert token_metadata(None) == ()


class TavilyKey(BaseModel):
    """Like OGX's tavily provider's validator: its own key required."""

    tavily_search_api_key: str


class Searcher:
    async def seen(self) -> Any:
        return request_provider_data()


async def test_provider_data_the_validator_rejects_fails_the_call_or_for_a_bridged_provider_reads_as_none() -> None:
    """hostel's own gateway answers bad provider data with 400; in a Llama Stack server a provider whose validator
    rejects the request's provider data (another provider's key, OGX's test id) reads none and goes on."""
    others = json.dumps({"openai_api_key": "sk", "__test_id": "t"}).encode()
    own = json.dumps({"tavily_search_api_key": "tv"}).encode()
    for lenient in (False, True):
        validator = f"{__name__}.TavilyKey"
        async with serve(Searcher(), provider_data_validator=validator, lenient_provider_data=lenient) as client:
            stub = client._stub
            replies = [r async for r in stub.call(pb.CallRequest(method="seen", provider_data_json=others))]
            if lenient:
                assert json.loads(bytes(replies[0].value_json)) is None
            else:
                assert replies[0].error.kind == pb.ERROR_KIND_BAD_PROVIDER_DATA
                assert "tavily_search_api_key" in replies[0].error.message
            replies = [r async for r in stub.call(pb.CallRequest(method="seen", provider_data_json=own))]
            assert json.loads(bytes(replies[0].value_json)) == {"tavily_search_api_key": "tv"}
