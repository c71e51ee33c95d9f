"""The protobuf wire format, read without a schema: fields as (number, wire type, value).

Owns varints, the 64-bit, length-delimited and 32-bit encodings, and their failure modes: a
truncated or overlong varint, a length past the end, field number 0, or a group/reserved wire type
all raise `BadRequest` with a one-line message naming where in the object it happened. Values
come back raw (an unsigned int or bytes); the schema-driven decoder gives them meaning.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from controlplane.api.errors import BadRequest

VARINT: Final = 0
FIXED64: Final = 1
LEN: Final = 2
FIXED32: Final = 5

_MASK64: Final = (1 << 64) - 1


def malformed(detail: str, where: str) -> BadRequest:
    """The one error this package raises for a body that is not valid protobuf."""
    return BadRequest(f"invalid protobuf body: {detail} at {where or 'the envelope'}")


def read_varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    """Read one varint at `pos`; return (value as unsigned 64-bit, position after it)."""
    value = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise malformed("truncated varint", where)
        if shift >= 70:
            raise malformed("varint longer than 10 bytes", where)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value & _MASK64, pos


def iter_fields(data: bytes, where: str) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field; varints and fixed ints as ints."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos, where)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise malformed("field number 0", where)
        value: int | bytes
        if wire == VARINT:
            value, pos = read_varint(data, pos, where)
        elif wire == LEN:
            size, pos = read_varint(data, pos, where)
            if size > end - pos:
                raise malformed(f"field {number} runs past the end", where)
            value = data[pos:pos + size]
            pos += size
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if size > end - pos:
                raise malformed(f"field {number} runs past the end", where)
            value = int.from_bytes(data[pos:pos + size], "little")
            pos += size
        else:
            raise malformed(f"unsupported wire type {wire} for field {number}", where)
        yield number, wire, value


def iter_packed(data: bytes, where: str) -> Iterator[int]:
    """Yield the varints of a packed repeated field."""
    pos = 0
    while pos < len(data):
        value, pos = read_varint(data, pos, where)
        yield value


def signed64(value: int) -> int:
    """An int64 from its unsigned 64-bit varint form (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def signed32(value: int) -> int:
    """An int32 the way Go reads it from a varint: the low 32 bits, two's complement."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value
