"""The protobuf wire format, as much of it as ``hostel_sdk._messages`` needs: varints, field keys,
length-delimited fields, and a field reader that can keep views into the received buffer.

See https://protobuf.dev/programming-guides/encoding/ for the format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

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
