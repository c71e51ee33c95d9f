"""Decode a Kubernetes protobuf request body into the JSON object kubectl would have sent.

Owns the `k8s\\x00` + runtime.Unknown envelope, the (apiVersion, kind) -> message registry, and the
table-driven walk that turns fields into camelCase JSON: zero scalars Go's JSON would omit are
dropped (Go's protobuf writes them anyway), pointers and non-omitempty fields keep them, present
messages stay (an empty struct is `{}` in Go's JSON too), unknown field numbers are skipped.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Final

from controlplane.api.errors import BadRequest, UnsupportedMediaType
from controlplane.api.protobuf import wellknown
from controlplane.api.protobuf.schema import (
    BOOL,
    BYTES,
    DURATION,
    FIELDSV1,
    I32,
    I64,
    INTORSTR,
    KEEP,
    LIST,
    MAP,
    MICROTIME,
    QUANTITY,
    SCALARS,
    STR,
    TIME,
    VARINTS,
    Message,
)
from controlplane.api.protobuf.schema_core import CORE
from controlplane.api.protobuf.schema_groups import GROUPS
from controlplane.api.protobuf.schema_meta import META
from controlplane.api.protobuf.wire import (
    LEN,
    VARINT,
    iter_fields,
    iter_packed,
    malformed,
    signed32,
    signed64,
)

MAGIC: Final = b"k8s\x00"
MESSAGES: Final[dict[str, Message]] = {**META, **CORE, **GROUPS}

# The kinds whose protobuf bodies we accept: what `kubectl create <generator>` and `autoscale` send.
KINDS: Final[dict[tuple[str, str], str]] = {
    ("v1", "ConfigMap"): "core.ConfigMap",
    ("v1", "Namespace"): "core.Namespace",
    ("v1", "ResourceQuota"): "core.ResourceQuota",
    ("v1", "Secret"): "core.Secret",
    ("v1", "Service"): "core.Service",
    ("v1", "ServiceAccount"): "core.ServiceAccount",
    ("apps/v1", "Deployment"): "apps.Deployment",
    ("batch/v1", "Job"): "batch.Job",
    ("batch/v1", "CronJob"): "batch.CronJob",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscaling.HorizontalPodAutoscaler",
    ("authentication.k8s.io/v1", "TokenRequest"): "authentication.TokenRequest",
    ("rbac.authorization.k8s.io/v1", "Role"): "rbac.Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "rbac.ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rbac.RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "rbac.ClusterRoleBinding",
    ("policy/v1", "PodDisruptionBudget"): "policy.PodDisruptionBudget",
    ("networking.k8s.io/v1", "Ingress"): "networking.Ingress",
    ("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.PriorityClass",
}

_SPECIAL: Final[dict[str, Callable[[bytes, str], Any]]] = {
    TIME: wellknown.time,
    MICROTIME: wellknown.micro_time,
    DURATION: wellknown.duration,
    QUANTITY: wellknown.quantity,
    INTORSTR: wellknown.int_or_string,
    FIELDSV1: wellknown.fields_v1,
}


def decode_object(body: bytes) -> dict[str, Any]:
    """The JSON-form object in a protobuf body, with "kind" and "apiVersion" from its envelope.

    Raises BadRequest for a malformed body and UnsupportedMediaType for a kind we have no table
    for (or a content encoding we cannot undo); the caller should ask for JSON then.
    """
    body = bytes(body)  # a bytearray or memoryview would fail the isinstance checks below
    if not body.startswith(MAGIC):
        raise BadRequest("invalid protobuf body: it does not start with the k8s\\x00 magic")
    parts = {1: b"", 2: b"", 3: b""}
    for number, wire, value in iter_fields(body[len(MAGIC):], ""):
        if number in parts:
            parts[number] = _bytes(wire, value, "the envelope")
    api_version = kind = ""
    for number, wire, value in iter_fields(parts[1], "the envelope's typeMeta"):
        if number == 1:
            api_version = _string(wire, value, "apiVersion")
        elif number == 2:
            kind = _string(wire, value, "kind")
    if parts[3]:
        encoding = parts[3].decode("utf-8", "replace")
        raise UnsupportedMediaType(f"protobuf content encoding {encoding!r} is not supported")
    if not kind:
        raise BadRequest("invalid protobuf body: the envelope names no kind")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise UnsupportedMediaType(
            f"protobuf bodies of kind {kind!r} in {api_version or 'no apiVersion'!r} are not "
            "supported; send application/json")
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(decode_message(parts[2], message, ""))
    return obj


def decode_message(data: bytes, message: str, where: str) -> dict[str, Any]:
    """One message, by its table name ("core.PodSpec"), as a JSON object."""
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    merged: dict[int, bytes] = {}  # a repeated singular message merges, as in protobuf
    for number, wire, value in iter_fields(data, where):
        spec = table.get(number)
        if spec is None:
            continue
        key, kind, flags = spec
        at = f"{where}.{key}" if where and key else key or where
        if flags & MAP:
            entry_key, entry = _map_entry(_bytes(wire, value, at), kind, at)
            out.setdefault(key, {})[entry_key] = entry
        elif flags & LIST:
            items = out.setdefault(key, [])
            if wire == LEN and kind in VARINTS:
                assert isinstance(value, bytes)
                items.extend(_varint_value(kind, v) for v in iter_packed(value, at))
            else:
                items.append(_value(kind, wire, value, f"{at}[{len(items)}]"))
        else:
            if kind not in SCALARS:
                value = merged[number] = merged.get(number, b"") + _bytes(wire, value, at)
            decoded = _value(kind, wire, value, at)
            if not key:  # a Go struct embedded inline: its keys are the parent's
                out.update(decoded)
            elif decoded is None or (kind in SCALARS and not flags & KEEP and not decoded):
                out.pop(key, None)
            else:
                out[key] = decoded
    return out


def _value(kind: str, wire: int, value: int | bytes, where: str) -> Any:
    if kind in VARINTS:
        if wire != VARINT:
            raise malformed(f"wire type {wire} where a varint belongs", where)
        assert isinstance(value, int)
        return _varint_value(kind, value)
    data = _bytes(wire, value, where)
    if kind == STR:
        return data.decode("utf-8", "replace")
    if kind == BYTES:
        return base64.b64encode(data).decode("ascii")
    special = _SPECIAL.get(kind)
    if special is not None:
        return special(data, where)
    return decode_message(data, kind, where)


def _varint_value(kind: str, value: int) -> int | bool:
    if kind == BOOL:
        return value != 0
    if kind == I32:
        return signed32(value)
    assert kind == I64
    return signed64(value)


def _map_entry(data: bytes, kind: str, where: str) -> tuple[str, Any]:
    """A map entry message {1: key, 2: value}; a missing value is the type's zero value."""
    key = ""
    found: tuple[int, int | bytes] | None = None
    for number, wire, value in iter_fields(data, where):
        if number == 1:
            key = _string(wire, value, where)
        elif number == 2:
            found = (wire, value)
    if found is None:
        found = (VARINT, 0) if kind in VARINTS else (LEN, b"")
    return key, _value(kind, found[0], found[1], f"{where}[{key}]")


def _bytes(wire: int, value: int | bytes, where: str) -> bytes:
    if wire != LEN or not isinstance(value, bytes):
        raise malformed(f"wire type {wire} where a length-delimited field belongs", where)
    return value


def _string(wire: int, value: int | bytes, where: str) -> str:
    return _bytes(wire, value, where).decode("utf-8", "replace")
