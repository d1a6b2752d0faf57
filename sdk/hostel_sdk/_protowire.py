"""The protobuf wire format, as much of it as ``hostel_sdk._messages`` needs: varints, field keys,
length-delimited fields, a field reader that can keep views into the received buffer, and ``Message``, a message
of scalar fields written and read from a table of them (what most of hostel.v1's messages are).

See https://protobuf.dev/programming-guides/encoding/ for the format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, ClassVar

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
Bytes = bytes | memoryview  # parsed bytes fields are views into the received message (no copy)
DOUBLE = struct.Struct("<d")


def varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def map_entry(entry: memoryview) -> tuple[str, memoryview]:
    """A ``map<string, bytes>`` entry: its key, and its value as a view (either may be absent: empty)."""
    key, value = "", entry[:0]
    pos, end = 0, len(entry)
    while pos < end:
        tag, pos = read_varint(entry, pos)
        size, pos = read_varint(entry, pos)  # both entry fields are length-delimited
        if tag == 0x0A:
            key = str(entry[pos : pos + size], "utf-8")
        elif tag == 0x12:
            value = entry[pos : pos + size]
        pos += size
    return key, value


def fields(data: bytes | memoryview, *, views: bool = False) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for every field; values of length-delimited fields are bytes, or with
    ``views`` memoryviews into ``data`` (no copy of a big field)."""
    view = memoryview(data)
    pos, end = 0, len(view)
    while pos < end:
        key, pos = read_varint(view, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == VARINT:
            value, pos = read_varint(view, pos)
        elif wire == LENGTH:
            size, pos = read_varint(view, pos)
            value = view[pos : pos + size] if views else bytes(view[pos : pos + size])
            pos += size
        elif wire == FIXED64:
            value = bytes(view[pos : pos + 8])
            pos += 8
        elif wire == FIXED32:
            value = bytes(view[pos : pos + 4])
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def skip_field(data: bytes | memoryview, pos: int, wire: int) -> int:
    """Where the next field starts, after the value of wire type ``wire`` starting at ``pos``."""
    if wire == VARINT:
        return read_varint(data, pos)[1]
    if wire == LENGTH:
        size, pos = read_varint(data, pos)
        return pos + size
    if wire in (FIXED64, FIXED32):
        return pos + (8 if wire == FIXED64 else 4)
    raise ValueError(f"unsupported protobuf wire type {wire}")


# The key and length of an item shorter than 128 bytes, by length: most stream items (tokens, chunks of a
# completion) are, and a batch may hold thousands, so they skip the general field writer and reader.
_SHORT_ITEM = [bytes((0x0A, size)) for size in range(0x80)]


def write_items(items: list[bytes]) -> bytes:
    """``items`` as ``repeated bytes`` field 1."""
    out = bytearray()
    short = _SHORT_ITEM
    for item in items:
        size = len(item)
        out += short[size] if size < 0x80 else b"\x0a" + varint(size)
        out += item
    return bytes(out)


def read_items(data: bytes | memoryview) -> list[bytes]:
    """The values of ``repeated bytes`` field 1; other fields are skipped, as protobuf does."""
    data = bytes(data)
    items: list[bytes] = []
    append = items.append
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] == 0x0A and data[pos + 1] < 0x80:  # field 1, a short item: the common case
            size = data[pos + 1]
            pos += 2
        else:
            key, pos = read_varint(data, pos)
            if key != 0x0A:
                pos = skip_field(data, pos, key & 7)
                continue
            size, pos = read_varint(data, pos)
        append(data[pos : pos + size])
        pos += size
    return items


def field_key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_field(number: int, payload: bytes) -> bytes:
    return field_key(number, LENGTH) + varint(len(payload)) + payload


class Message:
    """A message of scalar fields: FIELDS maps field number to (name, kind); kind is str/bytes/int/bool/double,
    or ``map<string, string>``."""

    FIELDS: ClassVar[dict[int, tuple[str, str]]] = {}

    def __init__(self, **values: Any) -> None:
        for name, kind in self.FIELDS.values():
            default = {} if kind == _STRING_MAP else [] if kind == _REPEATED_STRING else _DEFAULTS[kind]
            value = values.pop(name, default)
            setattr(self, name, list(value) if kind == _REPEATED_STRING else value)
        if values:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(values)}")

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf API name
        """The message in the protobuf wire format (proto3: default values are left out)."""
        out = []
        for number, (name, kind) in self.FIELDS.items():
            value = getattr(self, name)
            if not value:
                continue
            if kind == "bytes":
                out.append(length_field(number, value))
            elif kind == "str":
                out.append(length_field(number, value.encode()))
            elif kind == "double":
                out.append(field_key(number, FIXED64) + DOUBLE.pack(value))
            elif kind == _STRING_MAP:
                out.extend(length_field(number, string_entry(k, v)) for k, v in value.items())
            elif kind == _REPEATED_STRING:
                out.extend(length_field(number, item.encode()) for item in value)
            else:  # int, int32, bool, enum (a negative int32 is its 64-bit two's complement, as protobuf writes it)
                out.append(field_key(number, VARINT) + varint(int(value) & 0xFFFFFFFFFFFFFFFF))
        return b"".join(out)

    @classmethod
    def FromString(cls, data: bytes) -> Any:  # noqa: N802 - the protobuf API name
        """Parse the wire format; unknown fields are skipped."""
        message = cls()
        for number, wire, value in fields(data):
            field = cls.FIELDS.get(number)
            if field is None:
                continue
            name, kind = field
            if kind == "str" and wire == LENGTH:
                setattr(message, name, value.decode())
            elif kind == "bytes" and wire == LENGTH:
                setattr(message, name, value)
            elif kind == "double" and wire == FIXED64:
                setattr(message, name, DOUBLE.unpack(value)[0])
            elif kind == "bool" and wire == VARINT:
                setattr(message, name, bool(value))
            elif kind == "int" and wire == VARINT:
                setattr(message, name, value)
            elif kind == "int32" and wire == VARINT:
                setattr(message, name, value - (1 << 64) if value >= 1 << 63 else value)
            elif kind == _REPEATED_STRING and wire == LENGTH:
                getattr(message, name).append(value.decode())
            elif kind == _STRING_MAP and wire == LENGTH:
                key, text = map_entry(memoryview(value))
                getattr(message, name)[key] = str(text, "utf-8")
        return message

    __hash__ = None  # type: ignore[assignment]  # mutable, like protobuf messages

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


_DEFAULTS: dict[str, Any] = {"str": "", "bytes": b"", "int": 0, "int32": 0, "bool": False, "double": 0.0}
_STRING_MAP = "map<string, string>"
_REPEATED_STRING = "repeated string"


def string_entry(key: str, value: str) -> bytes:
    """A ``map<string, string>`` entry: ``{1: key, 2: value}``."""
    return length_field(1, key.encode()) + length_field(2, value.encode())
