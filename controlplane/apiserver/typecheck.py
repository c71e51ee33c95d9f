"""Go's typed decoding, replayed over a JSON object: a value of the wrong JSON type is an error.

kube-apiserver decodes every body into the kind's Go struct, so `"data": {"k": 1}` on a ConfigMap
or `"metadata": "x"` never reaches storage: a create or update body is refused with 400 (`ConfigMap
in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct
field ConfigMap.data of type string`), a patch whose result does not decode with 422 on the field
`patch`. Like Go we report the first mismatch in document order, name the innermost struct and the
JSON path of struct fields (no list indices or map keys), and leave unknown keys alone
(fieldValidation's business). Nulls become what Go leaves: a null field is dropped (a zero value),
a null list or map element becomes its type's zero value ("" in a map[string]string). That is the
one change made, in place. Walks the schema tables of controlplane.api.strict; kinds without one
pass unchecked. No I/O, no state.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any, Final

from controlplane.api.errors import FIELD_INVALID, BadRequest, Cause, Invalid
from controlplane.api.protobuf.schema import (
    BOOL,
    BYTES,
    FIELDSV1,
    I32,
    I64,
    INTORSTR,
    LIST,
    MAP,
    MICROTIME,
    QUANTITY,
    STR,
    TIME,
)
from controlplane.api.strict.fieldvalidation import MESSAGES, json_fields, message_for
from controlplane.api.validation import go_quote

_GO_NAMES: Final = {STR: "string", BYTES: "[]uint8", BOOL: "bool", I32: "int32", I64: "int64",
                    TIME: "v1.Time", MICROTIME: "v1.MicroTime", QUANTITY: "resource.Quantity",
                    INTORSTR: "intstr.IntOrString", FIELDSV1: "v1.FieldsV1"}
_RANGES: Final = {I32: (-(2**31), 2**31 - 1), I64: (-(2**63), 2**63 - 1)}
_RFC3339: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_QUANTITY_TEXT: Final = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY: Final = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
                              r"([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?")


_ZEROS: Final = {STR: "", BYTES: "", BOOL: False, I32: 0, I64: 0, QUANTITY: "0", INTORSTR: 0}


class Mismatch(Exception):
    """The first value that does not decode, with Go's error text."""


def decode_body(group: str, version: str, kind: str, obj: dict[str, Any]) -> None:
    """Decode a create/update body of `kind` as Go would; BadRequest when it cannot."""
    error = decode(group, version, kind, obj)
    if error:
        raise BadRequest(f'{kind} in version "{version}" cannot be handled as a {kind}: {error}')


def decode_patched(group: str, version: str, kind: str, obj: dict[str, Any]) -> None:
    """Decode the result of a patch as Go would; Invalid (field `patch`) when it cannot."""
    error = decode(group, version, kind, obj)
    if error:
        shown = go_quote(json.dumps(obj, separators=(",", ":")))
        raise Invalid.of("", "", "", [Cause(FIELD_INVALID, f"Invalid value: {shown}: {error}",
                                            "patch")])


def decode_as(message: str, obj: dict[str, Any]) -> str:
    """Decode `obj` as the schema message `message`; return Go's error ("" when it decodes)."""
    try:
        _struct(message, obj, (), typed=True)
    except Mismatch as exc:
        return str(exc)
    return ""


def decode(group: str, version: str, kind: str, obj: dict[str, Any]) -> str:
    """Decode `obj` as `kind`; return Go's error ("" when it decodes, or we hold no schema)."""
    message = message_for(group, version, kind)
    return decode_as(message, obj) if message else ""


def go_type(typ: str, flags: int = 0) -> str:
    """The Go type a table entry decodes into, as reflect prints it (`[]v1.Container`)."""
    if typ in _GO_NAMES:
        name = _GO_NAMES[typ]
    else:
        package, _, struct = typ.partition(".")
        name = f"{'v2' if package.endswith('v2') else 'v1'}.{struct}"
    if flags & LIST:
        return f"[]{name}"
    if flags & MAP:
        return f"map[string]{name}"
    return name


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _mismatch(value: Any, struct: str, path: tuple[str, ...], go: str,
              detail: str = "") -> Mismatch:
    shown = _json_kind(value) + (f" {detail}" if detail else "")
    if not path:
        return Mismatch(f"json: cannot unmarshal {shown} into Go value of type {go}")
    return Mismatch(f"json: cannot unmarshal {shown} into Go struct field "
                    f"{struct}.{'.'.join(path)} of type {go}")


def _struct(message: str, node: dict[str, Any], path: tuple[str, ...], *,
            typed: bool = False) -> None:
    struct = message.partition(".")[2]
    fields = json_fields(message, typed)
    for key, value in list(node.items()):
        known = fields.get(key)
        if known is None:
            continue
        if value is None:
            del node[key]
        else:
            _field(struct, known[0], known[1], value, (*path, key))


def _field(struct: str, typ: str, flags: int, value: Any, path: tuple[str, ...]) -> None:
    if flags & (LIST | MAP):
        container = list if flags & LIST else dict
        if not isinstance(value, container):
            raise _mismatch(value, struct, path, go_type(typ, flags))
        slots = range(len(value)) if isinstance(value, list) else list(value)
        for slot in slots:
            if value[slot] is None:
                value[slot] = _zero(typ)
            if value[slot] is not None:
                _value(struct, typ, value[slot], path)
    else:
        _value(struct, typ, value, path)


def _zero(typ: str) -> Any:
    """Go's zero value of an element type, as JSON (None: it encodes as null, e.g. Time)."""
    return {} if typ in MESSAGES else _ZEROS.get(typ)


def _value(struct: str, typ: str, value: Any, path: tuple[str, ...]) -> None:
    if typ in MESSAGES:
        if not isinstance(value, dict):
            raise _mismatch(value, struct, path, go_type(typ))
        _struct(typ, value, path)
    elif typ in (STR, BOOL):
        if not isinstance(value, str if typ == STR else bool):
            raise _mismatch(value, struct, path, go_type(typ))
    elif typ in _RANGES:
        _integer(struct, typ, value, path)
    elif typ == BYTES:
        if not isinstance(value, str):
            raise _mismatch(value, struct, path, go_type(typ))
        _base64(value)
    else:
        _special(typ, value)


def _integer(struct: str, typ: str, value: Any, path: tuple[str, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(value, struct, path, go_type(typ))
    low, high = _RANGES[typ]
    if isinstance(value, float) or not low <= value <= high:
        raise _mismatch(value, struct, path, go_type(typ), str(value))


def _base64(text: str) -> None:
    try:
        base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise Mismatch("illegal base64 data at input byte 0") from None


def _special(typ: str, value: Any) -> None:
    """The custom decoders: Time, MicroTime, Quantity, IntOrString (FieldsV1 takes anything)."""
    if typ in (TIME, MICROTIME):
        if not isinstance(value, str):
            raise _mismatch(value, "", (), "string")
        if not _RFC3339.fullmatch(value) or not _valid_time(value):
            raise Mismatch(f"parsing time {go_quote(value)} as "
                           '"2006-01-02T15:04:05Z07:00": cannot parse it as RFC 3339')
    elif typ == QUANTITY:
        if isinstance(value, bool) or not isinstance(value, str | int | float) or (
                not _QUANTITY.fullmatch(str(value).strip())):
            raise Mismatch(f"quantities must match the regular expression '{_QUANTITY_TEXT}'")
    elif typ == INTORSTR and not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _mismatch(value, "", (), "int32")
        if isinstance(value, float) or not -(2**31) <= value < 2**31:
            raise _mismatch(value, "", (), "int32", str(value))


def _valid_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
