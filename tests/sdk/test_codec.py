from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, model_serializer

from hostel_sdk import codec


class Color(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    y: int
    color: Color = Color.RED


@dataclasses.dataclass
class Box:
    corner: Point
    label: str


def test_dumps_models_dataclasses_enums_and_datetimes_as_json() -> None:
    value = {"box": Box(Point(x=1, y=2), "é"), "at": datetime(2026, 1, 2, tzinfo=UTC)}
    assert codec.loads(codec.dumps(value)) == {
        "box": {"corner": {"x": 1, "y": 2, "color": "red"}, "label": "é"},
        "at": "2026-01-02T00:00:00Z",
    }


def test_dumps_keeps_non_ascii_as_utf8() -> None:
    assert codec.dumps("日本") == '"日本"'.encode()


def test_loads_of_empty_is_none() -> None:
    assert codec.loads(b"") is None


def test_dumps_refuses_what_json_cannot_hold() -> None:
    with pytest.raises((TypeError, ValueError)):
        codec.dumps(object())


async def _method(point: Point, boxes: list[Box], scale: float = 1.0, *rest: Any, **extra: Any) -> None: ...


async def _strict(a: int, *, b: str = "x") -> None: ...


def test_binder_rebuilds_arguments_from_type_hints() -> None:
    binder = codec.MethodBinder.for_callable("m", _method)
    _, kwargs = binder.bind([], {"point": {"x": 1, "y": 2}, "boxes": [{"corner": {"x": 0, "y": 0}, "label": "a"}]})
    assert kwargs["point"] == Point(x=1, y=2)
    assert isinstance(kwargs["boxes"][0], Box)
    assert isinstance(kwargs["boxes"][0].corner, Point)


def test_binder_handles_positional_arguments() -> None:
    args, kwargs = codec.MethodBinder.for_callable("m", _method).bind([{"x": 3, "y": 4}, [], 2], {})
    assert args == [Point(x=3, y=4), [], 2.0] and kwargs == {}


def test_binder_reports_missing_unexpected_and_invalid_arguments() -> None:
    binder = codec.MethodBinder.for_callable("m", _method)
    with pytest.raises(codec.ArgumentError, match="missing a required argument: 'point'"):
        binder.bind([], {"boxes": []})
    with pytest.raises(codec.ArgumentError, match=r"(?s)argument 'point'.*int_parsing"):
        binder.bind([], {"point": {"x": "not a number", "y": 1}, "boxes": []})
    strict = codec.MethodBinder.for_callable("g", _strict)
    with pytest.raises(codec.ArgumentError, match="unexpected keyword argument 'nope'"):
        strict.bind([], {"a": 1, "nope": 2})
    with pytest.raises(codec.ArgumentError, match=r"(?s)argument 'a'.*int"):
        strict.bind([], {"a": "x"})
    assert strict.bind([], {"a": "7", "b": "y"}) == ([], {"a": 7, "b": "y"})


def test_binder_knows_async_generators_stream() -> None:
    async def gen() -> Any:
        yield 1

    assert codec.MethodBinder.for_callable("gen", gen).streams
    assert not codec.MethodBinder.for_callable("m", _method).streams


class ChatParams(BaseModel):
    model: str
    stream: bool = False


async def _request_style(params: ChatParams) -> None: ...


def test_a_method_taking_one_request_model_gets_keyword_fields_wrapped() -> None:
    binder = codec.MethodBinder.for_callable("openai_chat_completion", _request_style)
    assert binder.bind([], {"model": "m", "stream": True}) == ([], {"params": ChatParams(model="m", stream=True)})
    assert binder.bind([], {"params": {"model": "m"}}) == ([], {"params": ChatParams(model="m")})


class Revalidated(BaseModel):
    model_config = {"revalidate_instances": "always"}
    n: int


async def _takes_models(params: ChatParams, checked: Revalidated) -> None: ...


def test_a_model_built_already_is_passed_as_is_unless_its_class_asks_to_be_revalidated() -> None:
    """Arguments tagged with their class arrive built (``untag``); the binder does not validate them again, except
    where the class says instances are always revalidated."""
    params, checked = ChatParams(model="m"), Revalidated(n=1)
    checked.n = "2"  # type: ignore[assignment] - a value only validation turns back into an int
    _, kwargs = codec.MethodBinder.for_callable("m", _takes_models).bind([], {"params": params, "checked": checked})
    assert kwargs["params"] is params
    assert kwargs["checked"] is not checked and kwargs["checked"].n == 2


async def _keyword_style(model: str, messages: list[Any], stream: bool | None = False, **kwargs: Any) -> None: ...


async def _takes_a_dict(model: dict[str, Any]) -> None: ...


def test_a_whole_request_sent_to_a_method_taking_its_fields_is_spread() -> None:
    """A Llama Stack 0.7 server sends ``openai_chat_completion(params)`` to a provider written for 0.2.x."""
    binder = codec.MethodBinder.for_callable("openai_chat_completion", _keyword_style)
    request = {"model": "m", "messages": [{"role": "user"}], "stream": True, "top_p": None, "user": "u"}
    assert binder.bind([request], {}) == (
        [],
        {"model": "m", "messages": [{"role": "user"}], "stream": True, "user": "u"},
    )
    # not a request for this method: bound as the positional argument it is
    strict = codec.MethodBinder.for_callable("g", _strict)
    with pytest.raises(codec.ArgumentError, match=r"(?s)argument 'a'"):
        strict.bind([{"b": "y"}], {})
    dict_arg = codec.MethodBinder.for_callable("d", _takes_a_dict)
    assert dict_arg.bind([{"name": "x"}], {}) == ([{"name": "x"}], {})


def test_dumps_handles_what_the_fast_path_cannot() -> None:
    huge = 2**70
    assert codec.loads(codec.dumps({"n": huge, 1: "int key", "b": b"bytes"})) == {
        "n": huge,
        "1": "int key",
        "b": "bytes",
    }


def test_a_request_model_is_sent_with_the_fields_that_were_set() -> None:
    """OGX's request models refuse an explicit null (``dimensions: null``): send what the caller set, as in process."""
    from typing import Annotated

    from pydantic import BaseModel, field_validator

    class EmbeddingsRequest(BaseModel):
        model: str
        dimensions: int | None = None
        user: str | None = None

        @field_validator("dimensions", "user", mode="before")
        @classmethod
        def _no_null(cls, value: object) -> object:
            if value is None:
                raise ValueError("may be left out, never null")
            return value

    class Static(BaseModel):
        type: Literal["static"] = "static"  # a discriminator: left at its default, it must still be sent
        size: int = 800

    class Auto(BaseModel):
        type: Literal["auto"] = "auto"

    class StoreRequest(BaseModel):
        chunking: Annotated[Static | Auto, Field(discriminator="type")]
        embeddings: list[EmbeddingsRequest]

    request = EmbeddingsRequest(model="m")
    assert codec.loads(codec.dumps({"params": request}, as_arguments=True)) == {"params": {"model": "m"}}
    assert codec.loads(codec.dumps(request)) == {"model": "m", "dimensions": None, "user": None}  # results: whole
    EmbeddingsRequest.model_validate(codec.loads(codec.dumps(request, as_arguments=True)))
    store = StoreRequest(chunking=Static(), embeddings=[request, EmbeddingsRequest(model="n", user="u")])
    raw = codec.dumps(store, as_arguments=True)
    sent = codec.loads(raw)
    assert sent["chunking"] == {"type": "static"}  # the discriminator, set or not; size was not set
    assert StoreRequest.model_validate(codec.untag(sent)).chunking.model_fields_set == {"type"}
    assert [item["value"] for item in sent["embeddings"]] == [{"model": "m"}, {"model": "n", "user": "u"}]
    assert b"null" not in raw
    assert StoreRequest.model_validate(codec.untag(sent)) == store


def test_a_model_in_a_field_its_class_does_not_type_is_rebuilt_as_its_class() -> None:
    """OGX's vector_io router puts filter models into ``params: dict[str, Any]``; in process the provider gets them
    as models, so through hostel it must too."""

    from pydantic import BaseModel

    class ComparisonFilter(BaseModel):
        type: Literal["eq", "ne"]
        key: str
        value: Any

    class QueryRequest(BaseModel):
        query: str
        params: dict[str, Any] | None = None

    import sys
    import types

    module = types.ModuleType("hostel_test_filters")
    module.ComparisonFilter = ComparisonFilter  # type: ignore[attr-defined]
    ComparisonFilter.__module__, ComparisonFilter.__qualname__ = module.__name__, "ComparisonFilter"
    sys.modules[module.__name__] = module
    try:
        request = QueryRequest(query="q", params={"filters": [ComparisonFilter(type="eq", key="k", value=1)], "k": 3})
        sent = codec.dumps({"request": request}, as_arguments=True)
        assert codec.has_models(sent)
        received = QueryRequest.model_validate(codec.untag(codec.loads(sent))["request"])
        assert received.params == {"filters": [ComparisonFilter(type="eq", key="k", value=1)], "k": 3}
        del sys.modules[module.__name__]  # a class this process does not have: its plain value
        assert codec.untag(codec.loads(sent))["request"]["params"]["filters"] == [
            {"type": "eq", "key": "k", "value": 1}
        ]
    finally:
        sys.modules.pop(module.__name__, None)


class Labelled(BaseModel):
    """A model whose own serializer adds a key: the fields it writes are still sent as arguments are."""

    name: str
    points: list[Point] = []
    note: str | None = None

    @model_serializer(mode="wrap")
    def _with_kind(self, handler: Any) -> dict[str, Any]:
        return {**handler(self), "kind": "labelled"}


class Holder(BaseModel):
    """Fields that cannot hold a model, one that may, and one the model's own dump leaves out."""

    tags: list[str] = []
    weights: dict[str, float] = {}
    anything: Any = None
    hidden: Point | None = Field(default=None, exclude=True)


class McpTool(BaseModel):
    """OGX's MCP tool keeps the caller's token out of its dumps (``Field(exclude=True)``)."""

    type: Literal["mcp"] = "mcp"
    server_url: str
    authorization: str | None = Field(default=None, exclude=True)


class ToolRequest(BaseModel):
    tools: list[McpTool] = []


def test_fields_a_model_dump_leaves_out_travel_as_arguments_when_set() -> None:
    request = ToolRequest(tools=[McpTool(server_url="http://mcp", authorization="Bearer t"), McpTool(server_url="u")])
    received = ToolRequest.model_validate(codec.untag(codec.loads(codec.dumps(request, as_arguments=True))))
    assert [tool.authorization for tool in received.tools] == ["Bearer t", None]
    assert received.tools[1].model_fields_set == {"type", "server_url"}  # unset stays unset


def test_arguments_keep_what_each_model_writes_and_tag_only_models_inside_containers_or_any() -> None:
    sent = codec.loads(codec.dumps([Labelled(name="a", points=[Point(x=1, y=2)])], as_arguments=True))[0]
    assert sent == {
        "name": "a", "kind": "labelled",
        "points": [{codec.MODEL_KEY: f"{__name__}.Point", "value": {"x": 1, "y": 2}}],
    }  # fmt: skip
    holder = Holder(tags=["x"], weights={"w": 0.5}, anything=Point(x=3, y=4), hidden=Point(x=5, y=6))
    assert codec.loads(codec.dumps(holder, as_arguments=True)) == {
        "tags": ["x"], "weights": {"w": 0.5},
        "anything": {codec.MODEL_KEY: f"{__name__}.Point", "value": {"x": 3, "y": 4}},
        "hidden": {"x": 5, "y": 6},  # a provider reads it from its argument in process
    }  # fmt: skip
    assert "hidden" not in codec.loads(codec.dumps(holder))  # a result is written as the model writes itself
    assert codec.untag(codec.loads(codec.dumps(holder, as_arguments=True)))["anything"] == Point(x=3, y=4)


def _positional(a: Point, b: int = 0, /, *, c: str = "") -> None: ...


def test_positional_arguments_that_fit_are_bound_by_position_and_those_that_do_not_are_refused() -> None:
    binder = codec.MethodBinder.for_callable("p", _positional)
    assert binder.bind([{"x": 1, "y": 2}, "3"], {}) == ([Point(x=1, y=2), 3], {})
    with pytest.raises(codec.ArgumentError, match=r"argument 'a'"):
        binder.bind([{"x": 1}], {})
    with pytest.raises(codec.ArgumentError, match="too many positional"):
        binder.bind([{"x": 1, "y": 2}, 3, 4], {})
    with pytest.raises(codec.ArgumentError, match="missing a required argument"):
        binder.bind([], {"c": "x"})


def test_json_rebuilder_validates_straight_from_the_json_as_rebuild_does_from_its_value() -> None:
    data = codec.dumps(Point(x=1, y=2))
    rebuild = codec.json_rebuilder(Point)
    assert rebuild(data) == codec.rebuild(codec.loads(data), Point) == Point(x=1, y=2)
    assert rebuild(b"null") is None
    assert codec.json_rebuilder(dict)(b'{"a": [1]}') == {"a": [1]}  # a plain annotation: just decoded
    with pytest.raises(ValueError, match="y"):
        rebuild(b'{"x": 1}')


class Chunk(BaseModel):
    """A stream's item with what a model's JSON can hold: an alias, a datetime, bytes, a nested model, None."""

    model_config = {"populate_by_name": True}
    kind: str = Field(alias="object")
    at: datetime
    raw: bytes
    corner: Point
    note: str | None = None


def test_a_model_is_written_in_one_step_exactly_as_its_value_would_be() -> None:
    chunk = Chunk(kind="chunk", at=datetime(2026, 1, 2, 3, tzinfo=UTC), raw=b"ab", corner=Point(x=1, y=2))
    one_step = codec.dumps(chunk)
    assert one_step == codec.dumps({"wrapped": chunk})[len(b'{"wrapped":') : -1]  # the general path, inside a dict
    assert codec.loads(one_step) == {
        "object": "chunk", "at": "2026-01-02T03:00:00Z", "raw": "ab", "corner": {"x": 1, "y": 2, "color": "red"},
        "note": None,
    }  # fmt: skip
    with pytest.raises(TypeError, match="cannot encode"):  # what it cannot write, the general path names
        codec.dumps(Point.model_construct(x=object(), y=1))
