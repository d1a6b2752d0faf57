"""A bridged provider's stream as the server gets it: each item validated from its JSON into the server's model as
it is taken from the wire, through a real worker (no server needed: the bridge's half of it)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hostel import Host
from hostel.bridge._impl import Bridge
from hostel.bridge._loop import ServingLoop
from hostel_sdk._client import decodes_with
from hostel_sdk.codec import as_sent
from tests.conftest import make_config


class Item(BaseModel):
    """The server's model of testprov's ``busy_stream`` items."""

    i: int
    made: float
    pad: str


class Newer(BaseModel):
    """A server whose model has a field this provider does not send."""

    i: int
    added_later: str


class NoServer:
    """What a bridge asks of its server while it streams: nothing but where provider data lives."""

    def provider_data_var(self) -> None:
        return None


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[tuple[Host, Bridge]]:
    async with Host.from_config(make_config(tmp_path)) as host:
        made = Bridge(
            server=NoServer(),  # type: ignore[arg-type]
            api="inference",
            host=host,
            thread=ServingLoop(),
            provider_id="t",
            server_apis=None,  # type: ignore[arg-type]
        )
        yield host, made


async def _items(bridge: Bridge, stream: Any, item_type: Any) -> list[Any]:
    return [item async for item in bridge._stream("busy_stream", stream, item_type)]


async def test_items_arrive_as_the_servers_model_in_order(bridge: tuple[Host, Bridge]) -> None:
    host, made = bridge
    items = await _items(made, await host.provider("t").busy_stream(n=2000, size=16, busy_s=0), Item)
    assert all(type(item) is Item for item in items)
    assert [item.i for item in items] == list(range(2000)) and items[7].pad == "x" * 16


async def test_items_that_do_not_fit_pass_on_as_sent_with_one_warning(
    bridge: tuple[Host, Bridge], caplog: pytest.LogCaptureFixture
) -> None:
    """As the provider's own object would be in process: its fields as attributes, which the server may set (OGX
    stamps a completion chunk's ``model``), and its own JSON when the server dumps it; still the JSON object it was
    for code that took it as one."""
    host, made = bridge
    caplog.set_level(logging.WARNING, "hostel.bridge._impl")
    items = await _items(made, await host.provider("t").busy_stream(n=50, size=1, busy_s=0), Newer)
    assert [item.i for item in items] == list(range(50)) and items[0].pad == "x"
    assert isinstance(items[0], dict) and items[0]["pad"] == "x"
    nested = as_sent({"choices": [{"text": "a", "finish_reason": ""}]})
    assert nested.choices[0].text == "a" and nested["choices"][0]["finish_reason"] == ""
    items[0].model = "ollama/x"
    assert json.loads(items[0].model_dump_json()) == {"i": 0, "pad": "x", "made": items[0].made, "model": "ollama/x"}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "does not fit the server's" in warnings[0] and "added_later" in warnings[0]


async def test_an_error_mid_stream_is_raised_as_the_providers_after_the_items_before_it(
    bridge: tuple[Host, Bridge],
) -> None:
    host, made = bridge
    got = []
    with pytest.raises(RuntimeError, match="stream broke after 3"):
        async for item in made._stream("fail_mid_stream", await host.provider("t").fail_mid_stream(after=3), int):
            got.append(item)
    assert got == [0, 1, 2]


async def test_a_host_stream_hands_each_items_json_to_the_decoder_it_is_given(bridge: tuple[Host, Bridge]) -> None:
    host, made = bridge
    stream = await host.provider("t").count(n=300)  # through the host's wrappers (admission)
    assert decodes_with(stream, lambda data: ("json", bytes(data)))
    assert [item async for item in stream] == [("json", str(i).encode()) for i in range(300)]

    async def plain() -> AsyncIterator[int]:
        yield 1

    assert not decodes_with(plain(), int)  # not hostel's: left to make its items its own way

    async def values() -> AsyncIterator[dict[str, Any]]:
        yield {"i": 1, "made": 0.5, "pad": ""}

    assert await _items(made, values(), Item) == [Item(i=1, made=0.5, pad="")]  # rebuilt from its value instead
