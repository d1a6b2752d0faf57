"""The hostel.v1 messages (protos/hostel/v1/worker.proto), encoded by hand in the protobuf wire format.

Why not the generated classes: importing protobuf costs a worker ~60 ms of start-up (its descriptor pool
pulls in the pure-Python message and text-format modules even with the upb backend), and requiring it
puts hostel's protobuf range next to providers' own protobuf pins. These messages are a few scalar,
bytes and string fields, so a small codec does. ``tests/sdk/test_messages.py`` proves it byte-compatible
with the code protoc generates from the same .proto (committed under ``_proto/``, never imported here).

Each class mirrors the generated API the rest of the code uses: keyword construction, attributes,
``SerializeToString()``, ``FromString()`` and, for CallReply's oneof, ``WhichOneof("kind")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from hostel_sdk._protowire import (
    DOUBLE,
    FIXED32,
    FIXED64,
    LENGTH,
    VARINT,
    Bytes,
    Message,
    fields,
    length_field,
    map_entry,
    read_items,
    read_varint,
    string_entry,
    varint,
    write_items,
)

# ErrorKind
ERROR_KIND_UNSPECIFIED = 0
ERROR_KIND_PROVIDER_RAISED = 1
ERROR_KIND_NO_SUCH_METHOD = 2
ERROR_KIND_BAD_ARGUMENTS = 3
ERROR_KIND_BAD_PROVIDER_DATA = 4
ERROR_KIND_BAD_RESULT = 5
ERROR_KIND_PERMISSION_DENIED = 6
ERROR_KIND_HOST_ERROR = 7
ERROR_KINDS = {
    "ERROR_KIND_UNSPECIFIED": 0, "ERROR_KIND_PROVIDER_RAISED": 1, "ERROR_KIND_NO_SUCH_METHOD": 2,
    "ERROR_KIND_BAD_ARGUMENTS": 3, "ERROR_KIND_BAD_PROVIDER_DATA": 4, "ERROR_KIND_BAD_RESULT": 5,
    "ERROR_KIND_PERMISSION_DENIED": 6, "ERROR_KIND_HOST_ERROR": 7,
}  # fmt: skip


class CallRequest(Message):
    """One call of a provider method. On every call's hot path: written out field by field."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {
        1: ("method", "str"), 2: ("args_json", "bytes"), 3: ("kwargs_json", "bytes"),
        4: ("provider_data_json", "bytes"), 5: ("timeout_s", "double"), 6: ("kwargs_text", "map<string, bytes>"),
        7: ("trace_context", "map<string, string>"),
    }  # fmt: skip
    __slots__ = (
        "args_json",
        "kwargs_json",
        "kwargs_text",
        "method",
        "provider_data_json",
        "timeout_s",
        "trace_context",
    )

    def __init__(
        self,
        method: str = "",
        *,
        args_json: Bytes = b"",
        kwargs_json: Bytes = b"",
        provider_data_json: Bytes = b"",
        timeout_s: float = 0.0,
        kwargs_text: Mapping[str, Bytes] | None = None,
        trace_context: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.args_json = args_json
        self.kwargs_json = kwargs_json
        self.provider_data_json = provider_data_json
        self.timeout_s = timeout_s
        self.kwargs_text: dict[str, Bytes] = dict(kwargs_text) if kwargs_text else {}
        self.trace_context: dict[str, str] = dict(trace_context) if trace_context else {}

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        method = self.method.encode()
        parts: list[Bytes] = [b"\x0a", varint(len(method)), method] if method else []
        if self.args_json:
            parts += (b"\x12", varint(len(self.args_json)), self.args_json)
        if self.kwargs_json:
            parts += (b"\x1a", varint(len(self.kwargs_json)), self.kwargs_json)
        if self.provider_data_json:
            parts += (b"\x22", varint(len(self.provider_data_json)), self.provider_data_json)
        if self.timeout_s:
            parts += (b"\x29", DOUBLE.pack(self.timeout_s))
        for name, text in self.kwargs_text.items():  # map entries: {1: key, 2: value}, the value not copied
            key = name.encode()
            head = b"".join((b"\x0a", varint(len(key)), key, b"\x12", varint(len(text))))
            parts += (b"\x32", varint(len(head) + len(text)), head, text)
        for header, value in self.trace_context.items():
            parts.append(length_field(7, string_entry(header, value)))
        return b"".join(parts)  # one copy of a big argument, not one per field

    @classmethod
    def FromString(cls, data: Bytes) -> CallRequest:  # noqa: N802 - the protobuf API name
        message = cls()
        view = memoryview(data)  # bytes fields stay views into the received buffer: no copy of big arguments
        pos, end = 0, len(data)
        while pos < end:
            key, pos = read_varint(data, pos)
            wire = key & 7
            if key == 0x29:  # timeout_s, fixed64
                message.timeout_s = DOUBLE.unpack_from(data, pos)[0]
                pos += 8
            elif wire == LENGTH:
                size, pos = read_varint(data, pos)
                value = view[pos : pos + size]
                pos += size
                if key == 0x0A:
                    message.method = str(value, "utf-8")
                elif key == 0x12:
                    message.args_json = value
                elif key == 0x1A:
                    message.kwargs_json = value
                elif key == 0x22:
                    message.provider_data_json = value
                elif key == 0x32:
                    name, text = map_entry(value)
                    message.kwargs_text[name] = text
                elif key == 0x3A:
                    name, text = map_entry(value)
                    message.trace_context[name] = str(text, "utf-8")
            elif wire == VARINT:
                _, pos = read_varint(data, pos)
            elif wire in (FIXED64, FIXED32):
                pos += 8 if wire == FIXED64 else 4
            else:
                raise ValueError(f"unsupported protobuf wire type {wire}")
        return message

    __hash__ = None  # mutable, like protobuf messages

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallRequest) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        return f"CallRequest({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


class HostCallRequest(Message):
    """One call from a worker to an API served by the host."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {
        1: ("api", "str"), 2: ("method", "str"), 3: ("args_json", "bytes"), 4: ("kwargs_json", "bytes"),
        5: ("provider_data_json", "bytes"), 6: ("trace_context", "map<string, string>"),
    }  # fmt: skip
    api: str
    method: str
    args_json: bytes
    kwargs_json: bytes
    provider_data_json: bytes
    trace_context: dict[str, str]


class RemoteError(Message):
    """An exception raised inside the worker."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {
        1: ("kind", "int"), 2: ("type_name", "str"), 3: ("message", "str"), 4: ("traceback", "str"),
        5: ("bases", "repeated string"), 6: ("status_code", "int32"), 7: ("attributes_json", "bytes"),
    }  # fmt: skip
    kind: int
    type_name: str
    message: str
    traceback: str
    bases: list[str]
    status_code: int
    attributes_json: bytes


class BlobChunk(Message):
    """Part of a blob's bytes."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {1: ("id", "int"), 2: ("data", "bytes")}
    id: int
    data: Bytes

    @classmethod
    def FromString(cls, data: bytes) -> BlobChunk:  # noqa: N802 - the protobuf API name
        """Parse the wire format, ``data`` a view into the received message: a chunk (1 MiB) is not copied out of
        it, so that code passing it on (to a socket, a file, a join) makes its only copy."""
        message = cls()
        for number, wire, value in fields(data, views=True):
            if number == 1 and wire == VARINT:
                message.id = value
            elif number == 2 and wire == LENGTH:
                message.data = value
        return message


class BlobRequest(Message):
    """Names a blob to read."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {1: ("id", "int")}
    id: int


class BlobReceipt(Message):
    """Reply of SendBlob."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {1: ("received", "int")}
    received: int


class StreamHandle(Message):
    """Names a stream waiting in the worker to be opened."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {1: ("id", "int")}
    id: int


class StreamBegin(Message):
    """Marks the start of a stream result."""


class StreamItems(Message):
    """A batch of stream items, in order (``repeated bytes items_json = 1``)."""

    def __init__(self, items_json: list[bytes] | None = None) -> None:
        self.items_json = list(items_json or [])

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        return write_items(self.items_json)

    @classmethod
    def FromString(cls, data: bytes) -> StreamItems:  # noqa: N802 - the protobuf API name
        return cls(read_items(data))


class CallReply:
    """One message of a call's reply stream: exactly one of the ``kind`` oneof is set."""

    _KINDS: ClassVar[dict[str, int]] = {
        "value_json": 1, "stream_begin": 2, "items": 3, "error": 4, "stream_handle": 5, "value_text": 7,
    }  # fmt: skip
    _RAW: ClassVar[dict[str, bytes]] = {"value_json": b"\x0a", "value_text": b"\x3a"}  # bytes members: their tags
    _TYPES: ClassVar[dict[int, Any]] = {2: StreamBegin, 3: StreamItems, 4: RemoteError, 5: StreamHandle}

    def __init__(self, mutations_json: bytes = b"", **value: Any) -> None:
        if len(value) > 1:
            raise TypeError("CallReply holds one of value_json, value_text, stream_begin, items, error, stream_handle")
        self.mutations_json = mutations_json  # field 6, outside the oneof
        self._kind: str | None
        self._value: Any
        self._kind, self._value = next(iter(value.items())) if value else (None, None)
        if self._kind is not None and self._kind not in self._KINDS:
            raise TypeError(f"CallReply has no field {self._kind}")

    def WhichOneof(self, group: str) -> str | None:  # noqa: N802 - the protobuf API name
        """The name of the field of the ``kind`` oneof that is set."""
        return self._kind

    def __getattr__(self, name: str) -> Any:
        if name in CallReply._KINDS:
            if self._kind == name:
                return self._value
            number = CallReply._KINDS[name]
            return b"" if name in CallReply._RAW else CallReply._TYPES[number]()
        raise AttributeError(name)

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        return b"".join(self._chunks())

    def _chunks(self) -> list[Bytes]:
        """The serialized message in pieces, a big value among them uncopied (for enclosing messages too)."""
        tail: list[Bytes] = (
            [b"\x32", varint(len(self.mutations_json)), self.mutations_json] if self.mutations_json else []
        )
        if self._kind is None:
            return tail
        tag = self._RAW.get(self._kind)
        if tag is not None:  # the common reply, written directly
            value: Bytes = self._value
            return [tag, varint(len(value)), value, *tail]
        number = self._KINDS[self._kind]
        # oneof members are written even when empty
        return [length_field(number, self._value.SerializeToString()), *tail]

    @classmethod
    def FromString(cls, data: Bytes) -> CallReply:  # noqa: N802 - the protobuf API name
        reply = cls.__new__(cls)
        reply._kind = reply._value = None
        reply.mutations_json = b""
        first = data[0] if data else 0
        if first in (0x0A, 0x3A):  # fast path: a lone value_json or value_text
            size, pos = read_varint(data, 1)
            if pos + size == len(data):
                reply._kind = "value_json" if first == 0x0A else "value_text"
                reply._value = memoryview(data)[pos:]  # a view, not a copy
                return reply
        for number, wire, value in fields(data):
            if number == 6 and wire == LENGTH:
                reply.mutations_json = value
                continue
            name = _REPLY_NAMES.get(number)
            if wire != LENGTH or name is None:
                continue
            reply._kind, reply._value = name, value if name in cls._RAW else cls._TYPES[number].FromString(value)
        return reply

    __hash__ = None  # type: ignore[assignment]  # mutable, like protobuf messages

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallReply) and (self._kind, self._value, self.mutations_json) == (
            other._kind,
            other._value,
            other.mutations_json,
        )

    def __repr__(self) -> str:
        return f"CallReply({self._kind}={self._value!r})"


_REPLY_NAMES = {number: name for name, number in CallReply._KINDS.items()}


class SessionRequest:
    """One frame of Worker.Session from the host: call ``id`` (``call``), or cancel it (``cancel``)."""

    __slots__ = ("call", "cancel", "id")

    def __init__(self, id: int = 0, *, call: CallRequest | None = None, cancel: bool = False) -> None:
        self.id = id
        self.call = call  # None when absent (generated code would give an empty CallRequest)
        self.cancel = cancel

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        parts: list[Bytes] = [b"\x08", varint(self.id)] if self.id else []
        if self.call is not None:
            body = self.call.SerializeToString()
            parts += (b"\x12", varint(len(body)), body)
        if self.cancel:
            parts.append(b"\x18\x01")
        return b"".join(parts)

    @classmethod
    def FromString(cls, data: Bytes) -> SessionRequest:  # noqa: N802 - the protobuf API name
        frame = cls()
        for number, wire, value in fields(data, views=True):
            if number == 1 and wire == VARINT:
                frame.id = value
            elif number == 2 and wire == LENGTH:
                frame.call = CallRequest.FromString(value)  # its arguments stay views into the frame: no copy
            elif number == 3 and wire == VARINT:
                frame.cancel = bool(value)
        return frame

    __hash__ = None  # type: ignore[assignment]  # mutable, like protobuf messages

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionRequest) and (self.id, self.call, self.cancel) == (
            other.id,
            other.call,
            other.cancel,
        )

    def __repr__(self) -> str:
        return f"SessionRequest(id={self.id}, call={self.call!r}, cancel={self.cancel})"


class SessionReply:
    """One frame of Worker.Session from the worker: the reply to call ``id``."""

    __slots__ = ("id", "reply")

    def __init__(self, id: int = 0, reply: CallReply | None = None) -> None:
        self.id = id
        self.reply = reply if reply is not None else CallReply()

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        body = self.reply._chunks()
        head: list[Bytes] = [b"\x08", varint(self.id)] if self.id else []
        return b"".join((*head, b"\x12", varint(sum(map(len, body))), *body))  # one copy of a big value

    @classmethod
    def FromString(cls, data: Bytes) -> SessionReply:  # noqa: N802 - the protobuf API name
        frame = cls.__new__(cls)
        frame.id, frame.reply = 0, CallReply()
        for number, wire, value in fields(data, views=True):
            if number == 1 and wire == VARINT:
                frame.id = value
            elif number == 2 and wire == LENGTH:
                frame.reply = CallReply.FromString(value)
        return frame

    __hash__ = None  # type: ignore[assignment]  # mutable, like protobuf messages

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionReply) and (self.id, self.reply) == (other.id, other.reply)

    def __repr__(self) -> str:
        return f"SessionReply(id={self.id}, reply={self.reply!r})"


class MethodInfo(Message):
    """One public method of the provider object."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {1: ("name", "str"), 2: ("streams", "bool")}
    name: str
    streams: bool


class DescribeRequest(Message):
    """Request of Worker.Describe."""


class DescribeReply:
    """Reply of Worker.Describe: ``repeated MethodInfo methods = 1``, sdk_version = 2, python_version = 3."""

    def __init__(
        self, methods: list[MethodInfo] | None = None, sdk_version: str = "", python_version: str = ""
    ) -> None:
        self.methods = list(methods or [])
        self.sdk_version = sdk_version
        self.python_version = python_version

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        parts = [length_field(1, m.SerializeToString()) for m in self.methods]
        if self.sdk_version:
            parts.append(length_field(2, self.sdk_version.encode()))
        if self.python_version:
            parts.append(length_field(3, self.python_version.encode()))
        return b"".join(parts)

    @classmethod
    def FromString(cls, data: bytes) -> DescribeReply:  # noqa: N802 - the protobuf API name
        reply = cls()
        for number, wire, value in fields(data):
            if wire != LENGTH:
                continue
            if number == 1:
                reply.methods.append(MethodInfo.FromString(value))
            elif number == 2:
                reply.sdk_version = value.decode()
            elif number == 3:
                reply.python_version = value.decode()
        return reply


class ShutdownRequest(Message):
    """Request of Worker.Shutdown."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {1: ("grace_s", "double")}
    grace_s: float


class ShutdownReply(Message):
    """Reply of Worker.Shutdown."""
