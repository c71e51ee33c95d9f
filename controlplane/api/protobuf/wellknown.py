"""JSON forms of the well-known messages whose Go types marshal themselves specially.

meta/v1 Time and MicroTime (RFC 3339 text, absent when zero), Duration (Go's "1h2m3s" text),
resource.Quantity (its canonical string), intstr.IntOrString (a number or a string) and FieldsV1
(the raw JSON it wraps). Each takes the message bytes and returns the JSON value, or None when Go
would write `null`, which the decoder leaves out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from controlplane.api.protobuf.wire import VARINT, iter_fields, malformed, signed32, signed64

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_GO_ZERO_TIME: Final = -62135596800  # 0001-01-01T00:00:00Z, Go's zero time.Time
_NANOS: Final = 1_000_000_000


def _int(wire: int, value: int | bytes, where: str) -> int:
    if wire != VARINT or not isinstance(value, int):
        raise malformed("wrong wire type, expected a varint", where)
    return value


def _text(value: int | bytes, where: str) -> str:
    if not isinstance(value, bytes):
        raise malformed("wrong wire type, expected length-delimited", where)
    return value.decode("utf-8", "replace")


def _seconds_nanos(data: bytes, where: str) -> tuple[int, int]:
    seconds = nanos = 0
    for number, wire, value in iter_fields(data, where):
        if number == 1:
            seconds = signed64(_int(wire, value, where))
        elif number == 2:
            nanos = signed32(_int(wire, value, where))
    return seconds, nanos


def _format(seconds: int, where: str) -> str:
    try:
        t = _EPOCH + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise malformed(f"time {seconds}s since the epoch is out of range", where) from None
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"


def time(data: bytes, where: str) -> str | None:
    """meta/v1 Time: whole seconds, like Go (which drops nanos read from protobuf)."""
    if not data:
        return None
    seconds, _ = _seconds_nanos(data, where)
    if seconds == _GO_ZERO_TIME:
        return None
    return _format(seconds, where) + "Z"


def micro_time(data: bytes, where: str) -> str | None:
    """meta/v1 MicroTime: RFC 3339 with exactly six fractional digits."""
    if not data:
        return None
    seconds, nanos = _seconds_nanos(data, where)
    seconds, nanos = seconds + nanos // _NANOS, nanos % _NANOS
    if seconds == _GO_ZERO_TIME and nanos == 0:
        return None
    return f"{_format(seconds, where)}.{nanos // 1000:06d}Z"


def _fraction(value: int, digits: int) -> str:
    text = f"{value:0{digits}d}".rstrip("0")
    return "." + text if text else ""


def go_duration(nanos: int) -> str:
    """Go's time.Duration.String(): "0s", "1.5ms", "2m0s", "-1h0m0.5s"."""
    if nanos == 0:
        return "0s"
    sign, u = ("-", -nanos) if nanos < 0 else ("", nanos)
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{u // 1000}{_fraction(u % 1000, 3)}µs"
    if u < _NANOS:
        return f"{sign}{u // 1_000_000}{_fraction(u % 1_000_000, 6)}ms"
    secs, frac = divmod(u, _NANOS)
    text = f"{secs % 60}{_fraction(frac, 9)}s"
    if secs >= 60:
        minutes = secs // 60
        text = f"{minutes % 60}m{text}"
        if minutes >= 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def duration(data: bytes, where: str) -> str:
    """meta/v1 Duration {1: nanoseconds}."""
    nanos = 0
    for number, wire, value in iter_fields(data, where):
        if number == 1:
            nanos = signed64(_int(wire, value, where))
    return go_duration(nanos)


def quantity(data: bytes, where: str) -> str:
    """resource.Quantity {1: string}; the zero Quantity is "0"."""
    text = ""
    for number, _, value in iter_fields(data, where):
        if number == 1:
            text = _text(value, where)
    return text or "0"


def int_or_string(data: bytes, where: str) -> int | str:
    """intstr.IntOrString {1: type (0 int, 1 string), 2: intVal, 3: strVal}."""
    kind, number_value, text = 0, 0, ""
    for number, wire, value in iter_fields(data, where):
        if number == 1:
            kind = signed64(_int(wire, value, where))
        elif number == 2:
            number_value = signed32(_int(wire, value, where))
        elif number == 3:
            text = _text(value, where)
    if kind == 0:
        return number_value
    if kind == 1:
        return text
    raise malformed(f"IntOrString type {kind} is neither 0 (int) nor 1 (string)", where)


def fields_v1(data: bytes, where: str) -> Any:
    """meta/v1 FieldsV1 {1: Raw}: the managed-fields JSON, parsed."""
    raw = b""
    for number, _, value in iter_fields(data, where):
        if number == 1:
            if not isinstance(value, bytes):
                raise malformed("wrong wire type, expected length-delimited", where)
            raw = value
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise malformed("fieldsV1 is not JSON", where) from None
