"""JSON in and out of the apiserver: orjson's speed with the standard library's exact results.

Every object crosses JSON several times per request (the body, the etcd value, the watch
event, the response), so this is the apiserver's hottest code. orjson is several times faster
than `json` but differs at the edges: it reads integers beyond 64 bits as floats; refuses lone
surrogates, a byte order mark and encodings other than UTF-8; and writes no integers beyond 64
bits, non-string keys or lone surrogates. So `loads` takes orjson's answer only when nothing
in the text can read differently, and hands everything else (every error too) to `json`;
`dumps` falls back to `json` for what orjson refuses. What `json` writes for NaN and infinities
is not JSON at all, so `dumps` writes null for them, as orjson does; JSON and YAML bodies
holding them are refused (negotiation).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# Every digit made "0", so that a run of 19 digits (a number that might not fit 64 bits, which
# orjson would read as a float) is found by bytes.find: 15x faster than a regular expression.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def loads(data: bytes, *, parse_constant: Callable[[str], Any] | None = None,
          parse_float: Callable[[str], Any] | None = None) -> Any:
    """`json.loads(data, ...)`, computed by orjson when that gives the same value.

    The optional hooks are `json.loads`'s; they only matter on the fallback path, since orjson
    accepts no NaN or Infinity and reads only finite floats.
    """
    if data.translate(_DIGITS_TO_ZERO).find(_LONG_NUMBER) < 0:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # an error, or something only `json` reads: let it say which
    return json.loads(data, parse_constant=parse_constant, parse_float=parse_float)


def dumps(obj: Any) -> bytes:
    """Compact JSON (no spaces, keys in insertion order, UTF-8 rather than \\u escapes)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # big integers, non-string keys, lone surrogates: as `json` writes them
        return json.dumps(obj, separators=(",", ":")).encode()


def dumps_to_keep(obj: Any) -> bytes:
    """`dumps` for what is kept a long time: orjson's result holds at least 4 KB of memory
    whatever its length (1.3 KB for a pod), so keep an exact copy instead."""
    return bytes(memoryview(dumps(obj)))
