"""The hand-written wire messages are byte-compatible with what protoc generates from protos/hostel/v1."""

from __future__ import annotations

from typing import Any

import pytest

from hostel_sdk import _messages as hand
from hostel_sdk._proto import worker_pb2 as gen

TEXT = "ünïcode ✓"
TRACEPARENT = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
CASES: list[tuple[str, dict[str, Any]]] = [
    ("CallRequest", {"method": "m", "args_json": b"[1]", "kwargs_json": b'{"a":1}', "provider_data_json": b"{}",
                     "timeout_s": 2.5}),
    ("CallRequest", {}),
    ("HostCallRequest", {"api": "inference", "method": TEXT, "kwargs_json": b"x" * 300, "provider_data_json": b"{}"}),
    ("HostCallRequest", {"api": "inference", "trace_context": {"traceparent": TRACEPARENT}}),
    ("CallRequest", {"method": "m", "trace_context": {"traceparent": TRACEPARENT}}),
    ("RemoteError", {"kind": 6, "type_name": "PermissionError", "message": TEXT, "traceback": "tb\n" * 50}),
    ("RemoteError", {"kind": 1, "type_name": "x.Gone", "bases": ["x.Base", "ValueError", TEXT], "status_code": 404}),
    ("RemoteError", {"type_name": "Odd", "status_code": -7}),
    ("StreamHandle", {"id": 2**40 + 5}),
    ("BlobChunk", {"id": 3, "data": bytes(range(256)) * 40}),
    ("BlobChunk", {"data": b"x"}),
    ("BlobRequest", {"id": 2**33}),
    ("BlobReceipt", {"received": 200 * 2**20}),
    ("MethodInfo", {"name": "count", "streams": True}),
    ("ShutdownRequest", {"grace_s": 0.25}),
    ("ShutdownReply", {}),
    ("DescribeRequest", {}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fields"), CASES)
def test_scalar_messages_match_generated_code_both_ways(name: str, fields: dict[str, Any]) -> None:
    ours, theirs = getattr(hand, name)(**fields), getattr(gen, name)(**fields)
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert getattr(hand, name).FromString(theirs.SerializeToString()) == ours
    assert getattr(gen, name).FromString(ours.SerializeToString()) == theirs


@pytest.mark.parametrize(
    "kind",
    [
        {"value_json": b'{"ok":true}'},
        {"value_json": b""},  # an empty oneof member is still written
        {"stream_begin": "begin"},
        {"items": [b"1", b"", b'"two"']},
        {"error": {"kind": 1, "type_name": "ValueError", "message": "bad"}},
        {"stream_handle": 7},
        {"value_text": TEXT.encode() * 1000},
    ],
)
def test_call_reply_oneof_matches_generated_code(kind: dict[str, Any]) -> None:
    ((name, value),) = kind.items()
    if name == "stream_begin":
        ours, theirs = hand.CallReply(stream_begin=hand.StreamBegin()), gen.CallReply(stream_begin=gen.StreamBegin())
    elif name == "items":
        ours = hand.CallReply(items=hand.StreamItems(items_json=value))
        theirs = gen.CallReply(items=gen.StreamItems(items_json=value))
    elif name == "error":
        ours, theirs = hand.CallReply(error=hand.RemoteError(**value)), gen.CallReply(error=gen.RemoteError(**value))
    elif name == "stream_handle":
        ours = hand.CallReply(stream_handle=hand.StreamHandle(id=value))
        theirs = gen.CallReply(stream_handle=gen.StreamHandle(id=value))
    else:
        ours, theirs = hand.CallReply(**{name: value}), gen.CallReply(**{name: value})
    assert ours.SerializeToString() == theirs.SerializeToString()
    parsed = hand.CallReply.FromString(theirs.SerializeToString())
    assert parsed.WhichOneof("kind") == theirs.WhichOneof("kind") == name
    assert parsed == ours
    assert gen.CallReply.FromString(ours.SerializeToString()) == theirs


def test_stream_items_of_every_length_match_generated_code_and_unknown_fields_are_skipped() -> None:
    """Items shorter than 128 bytes take a fast path each way; longer ones, and fields no version defines, the
    general one."""
    items = [bytes([i % 256]) * size for i, size in enumerate([0, 1, 2, 126, 127, 128, 129, 300, 16383, 16384, 70000])]
    items += [b"%d" % i for i in range(1000)]
    theirs = gen.StreamItems(items_json=items).SerializeToString()
    assert hand.StreamItems(items_json=items).SerializeToString() == theirs
    assert hand.StreamItems.FromString(theirs).items_json == items
    unknown = b"\x10\x05" + b"\x1a\x02hi" + b"\x21" + bytes(8) + b"\x2d" + bytes(4)  # varint, bytes, fixed64, 32
    assert hand.StreamItems.FromString(unknown + theirs + unknown).items_json == items


def test_call_reply_with_mutations_matches_generated_code() -> None:
    ours = hand.CallReply(value_json=b"null", mutations_json=b'{"messages":[]}')
    theirs = gen.CallReply(value_json=b"null", mutations_json=b'{"messages":[]}')
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert hand.CallReply.FromString(theirs.SerializeToString()) == ours
    assert gen.CallReply.FromString(ours.SerializeToString()) == theirs


def test_describe_reply_with_repeated_methods() -> None:
    methods = [("a", False), ("b", True)]
    ours = hand.DescribeReply(methods=[hand.MethodInfo(name=n, streams=s) for n, s in methods], sdk_version="0.1.0")
    theirs = gen.DescribeReply(methods=[gen.MethodInfo(name=n, streams=s) for n, s in methods], sdk_version="0.1.0")
    assert ours.SerializeToString() == theirs.SerializeToString()
    back = hand.DescribeReply.FromString(theirs.SerializeToString())
    assert [(m.name, m.streams) for m in back.methods] == methods and back.sdk_version == "0.1.0"


def test_error_kinds_match_the_proto_enum() -> None:
    assert dict(gen.ErrorKind.items()) == hand.ERROR_KINDS


def test_unknown_fields_are_skipped() -> None:
    newer = gen.CallRequest(method="m").SerializeToString() + bytes([0x40, 0x01]) + bytes([0x4A, 0x01, 0x41])
    assert hand.CallRequest.FromString(newer).method == "m"


def test_unset_oneof_members_read_as_defaults() -> None:
    reply = hand.CallReply(value_json=b"1")
    assert reply.error.type_name == "" and reply.items.items_json == [] and reply.stream_handle.id == 0


def test_call_request_with_text_arguments_matches_generated_code() -> None:
    fields: dict[str, Any] = {"method": "m", "kwargs_json": b'{"a":1}', "kwargs_text": {"doc": TEXT.encode() * 1000}}
    ours, theirs = hand.CallRequest(**fields), gen.CallRequest(**fields)
    assert ours.SerializeToString() == theirs.SerializeToString()  # one map entry: a single byte order
    assert hand.CallRequest.FromString(theirs.SerializeToString()) == ours
    assert gen.CallRequest.FromString(ours.SerializeToString()) == theirs
    several = {"a": b"1" * 200, "": b"", "\u00fc": TEXT.encode()}  # map order is free: compare parsed values
    parsed = hand.CallRequest.FromString(gen.CallRequest(method="m", kwargs_text=several).SerializeToString())
    assert {k: bytes(v) for k, v in parsed.kwargs_text.items()} == several
    assert (
        dict(gen.CallRequest.FromString(hand.CallRequest(kwargs_text=several).SerializeToString()).kwargs_text)
        == several
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"id": 1, "call": {"method": "m", "kwargs_json": b'{"a":1}', "timeout_s": 2.5, "kwargs_text": {"t": b"x"}}},
        {"id": 2**40 + 3, "call": {}},  # an empty call is still present
        {"id": 9, "cancel": True},
    ],
)
def test_session_request_matches_generated_code(fields: dict[str, Any]) -> None:
    call = fields.get("call")
    ours = hand.SessionRequest(fields["id"], call=None if call is None else hand.CallRequest(**call),
                               cancel=fields.get("cancel", False))  # fmt: skip
    theirs = gen.SessionRequest(id=fields["id"], cancel=fields.get("cancel", False))
    if call is not None:
        theirs.call.CopyFrom(gen.CallRequest(**call))
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert hand.SessionRequest.FromString(theirs.SerializeToString()) == ours
    assert gen.SessionRequest.FromString(ours.SerializeToString()) == theirs


@pytest.mark.parametrize(
    ("reply", "generated"),
    [
        (hand.CallReply(value_json=b'{"ok":true}', mutations_json=b'{"0":[]}'),
         gen.CallReply(value_json=b'{"ok":true}', mutations_json=b'{"0":[]}')),
        (hand.CallReply(value_text=TEXT.encode() * 5000), gen.CallReply(value_text=TEXT.encode() * 5000)),
        (hand.CallReply(stream_handle=hand.StreamHandle(id=4)), gen.CallReply(stream_handle=gen.StreamHandle(id=4))),
        (hand.CallReply(error=hand.RemoteError(kind=2, message="no")),
         gen.CallReply(error=gen.RemoteError(kind=2, message="no"))),
    ],
)  # fmt: skip
def test_session_reply_matches_generated_code(reply: hand.CallReply, generated: Any) -> None:
    ours, theirs = hand.SessionReply(7, reply), gen.SessionReply(id=7, reply=generated)
    assert ours.SerializeToString() == theirs.SerializeToString()
    parsed = hand.SessionReply.FromString(theirs.SerializeToString())
    assert parsed == ours and parsed.reply.WhichOneof("kind") == generated.WhichOneof("kind")
    assert gen.SessionReply.FromString(ours.SerializeToString()) == theirs


def test_trace_context_maps_of_several_headers_round_trip() -> None:
    headers = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "tracestate": "a=1,b=2", "baggage": TEXT}
    for name in ("CallRequest", "HostCallRequest"):
        ours = getattr(hand, name)(trace_context=headers)
        assert dict(getattr(gen, name).FromString(ours.SerializeToString()).trace_context) == headers
        theirs = getattr(gen, name)(trace_context=headers).SerializeToString()
        assert getattr(hand, name).FromString(theirs).trace_context == headers
