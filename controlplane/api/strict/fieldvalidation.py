"""Server-side field validation: the `fieldValidation` query parameter (Ignore, Warn, Strict).

kube-apiserver decodes a create/update body with sigs.k8s.io/json's strict mode and reports
every key its Go type lacks (`unknown field "spec.replicass"`) and every key given twice
(`duplicate field "metadata.name"`), in document order, deduplicated, at most 100. Paths join
keys with `.` and list indices as `[i]`; map keys count as path segments. Maps accept any key;
values with a custom decoder (Time, Quantity, IntOrString, FieldsV1) are not looked into, nor
is the value of an unknown key. The schema tables give the JSON names of each type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Final

from controlplane.api.errors import FIELD_NOT_SUPPORTED, BadRequest, Cause, Invalid
from controlplane.api.protobuf.schema import LIST, MAP, STR, Message
from controlplane.api.protobuf.schema_core import CORE as PB_CORE
from controlplane.api.protobuf.schema_groups import GROUPS as PB_GROUPS
from controlplane.api.protobuf.schema_meta import META
from controlplane.api.strict.schema_core import CORE
from controlplane.api.strict.schema_groups import GROUPS
from controlplane.api.validation import go_quote

IGNORE: Final = "Ignore"
WARN: Final = "Warn"
STRICT: Final = "Strict"
DIRECTIVES: Final = ("", IGNORE, STRICT, WARN)  # as Kubernetes lists them: sorted, "" = Warn

UNKNOWN: Final = "unknown field"
DUPLICATE: Final = "duplicate field"
MAX_ERRORS: Final = 100  # sigs.k8s.io/json stops collecting here

MESSAGES: Final[dict[str, Message]] = {**META, **PB_CORE, **PB_GROUPS, **CORE, **GROUPS}

# Served (group, version, kind) -> root message. DeleteOptions is accepted in any group/version.
KINDS: Final[dict[tuple[str, str, str], str]] = {
    ("", "v1", "Namespace"): "core.Namespace",
    ("", "v1", "Pod"): "core.Pod",
    ("", "v1", "Node"): "core.Node",
    ("", "v1", "Service"): "core.Service",
    ("", "v1", "Endpoints"): "core.Endpoints",
    ("", "v1", "ConfigMap"): "core.ConfigMap",
    ("", "v1", "Secret"): "core.Secret",
    ("", "v1", "ServiceAccount"): "core.ServiceAccount",
    ("", "v1", "Event"): "core.Event",
    ("", "v1", "Binding"): "core.Binding",
    ("events.k8s.io", "v1", "Event"): "events.Event",
    ("apps", "v1", "Deployment"): "apps.Deployment",
    ("apps", "v1", "ReplicaSet"): "apps.ReplicaSet",
    ("apps", "v1", "DaemonSet"): "apps.DaemonSet",
    ("batch", "v1", "Job"): "batch.Job",
    ("batch", "v1", "CronJob"): "batch.CronJob",
    ("coordination.k8s.io", "v1", "Lease"): "coordination.Lease",
    ("discovery.k8s.io", "v1", "EndpointSlice"): "discovery.EndpointSlice",
    ("rbac.authorization.k8s.io", "v1", "Role"): "rbac.Role",
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"): "rbac.RoleBinding",
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"): "rbac.ClusterRole",
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"): "rbac.ClusterRoleBinding",
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): "autoscaling.HorizontalPodAutoscaler",
    ("autoscaling", "v2", "HorizontalPodAutoscaler"): "autoscalingv2.HorizontalPodAutoscaler",
    ("autoscaling", "v1", "Scale"): "autoscaling.Scale",
    ("policy", "v1", "Eviction"): "policy.Eviction",
}
ANY_VERSION: Final[dict[str, str]] = {"DeleteOptions": "meta.DeleteOptions"}

# Messages that embed TypeMeta when nested (top-level objects always carry it).
TYPED: Final = frozenset({"meta.DeleteOptions"})
TYPE_META: Final[dict[str, tuple[str, int]]] = {"kind": (STR, 0), "apiVersion": (STR, 0)}


def message_for(group: str, version: str, kind: str) -> str | None:
    """Return the root message name of a kind, or None when we hold no schema for it."""
    return KINDS.get((group, version, kind)) or ANY_VERSION.get(kind)


@cache
def json_fields(message: str, typed: bool = False) -> dict[str, tuple[str, int]]:
    """Return {json name: (type, flags)} of a message, inline (embedded) structs merged in."""
    out: dict[str, tuple[str, int]] = dict(TYPE_META) if typed or message in TYPED else {}
    for name, typ, flags in MESSAGES[message].values():
        if name:
            out[name] = (typ, flags)
        else:
            out.update(json_fields(typ))
    return out


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in document order, duplicates kept."""


def _items(node: Any) -> Iterable[tuple[str, Any]] | None:
    if isinstance(node, _Pairs):
        return node
    if isinstance(node, Mapping):
        return node.items()
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walk:
    """One strict decode: the errors found so far, deduplicated and capped as Go does."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []  # (UNKNOWN or DUPLICATE, path)

    def save(self, what: str, path: str) -> None:
        if len(self.errors) < MAX_ERRORS and (what, path) not in self.errors:
            self.errors.append((what, path))

    def struct(self, fields: Mapping[str, tuple[str, int]], node: Any, path: str) -> None:
        items = _items(node)
        if items is None:
            return  # a type mismatch, which is not a strict error
        seen: set[str] = set()
        for key, value in items:
            known = fields.get(key)
            if known is None:
                self.save(UNKNOWN, _join(path, key))
                continue
            if key in seen:
                self.save(DUPLICATE, _join(path, key))
            seen.add(key)
            self.field(known[0], known[1], value, _join(path, key))

    def field(self, typ: str, flags: int, value: Any, path: str) -> None:
        if flags & LIST:
            if isinstance(value, list):
                for i, elem in enumerate(value):
                    self.element(typ, elem, f"{path}[{i}]")
        elif flags & MAP:
            items = _items(value)
            seen: set[str] = set()
            for key, elem in items or ():
                if key in seen:
                    self.save(DUPLICATE, _join(path, key))
                seen.add(key)
                self.element(typ, elem, _join(path, key))
        else:
            self.element(typ, value, path)

    def element(self, typ: str, value: Any, path: str) -> None:
        if typ in MESSAGES:
            self.struct(json_fields(typ), value, path)
        # Scalars and custom-decoded values (Time, Quantity, FieldsV1, ...) hold no fields.


def _load_pairs(body: bytes | str) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_Pairs)
    except ValueError:
        return None  # not JSON: the caller's own decoding reports that


def strict_errors(group: str, version: str, kind: str,
                  obj: Mapping[str, Any] | bytes | str) -> list[str]:
    """Return Kubernetes' strict decoding errors of an object, e.g. `unknown field "spec.x"`.

    Pass the raw JSON body (bytes or str) to have duplicate keys reported too; a dict cannot
    hold them. Kinds we hold no schema for have no errors.
    """
    message = message_for(group, version, kind)
    if message is None:
        return []
    node = _load_pairs(obj) if isinstance(obj, bytes | str) else obj
    walk = _Walk()
    walk.struct(json_fields(message, typed=True), node, "")
    return [f"{what} {go_quote(path)}" for what, path in walk.errors]


def unknown_fields(group: str, version: str, kind: str, obj: Mapping[str, Any]) -> list[str]:
    """Return the paths of the fields of `obj` its kind does not have, in document order."""
    message = message_for(group, version, kind)
    if message is None:
        return []
    walk = _Walk()
    walk.struct(json_fields(message, typed=True), obj, "")
    return [path for what, path in walk.errors if what == UNKNOWN]


def validate_directive(field_validation: str, *, options: str = "CreateOptions") -> str:
    """Return the effective directive (absent means Warn) or raise Kubernetes' Invalid error.

    `options` names the verb's options kind: CreateOptions, UpdateOptions or PatchOptions.
    """
    if field_validation not in DIRECTIVES:
        supported = ", ".join(go_quote(d) for d in DIRECTIVES)
        detail = f"Unsupported value: {go_quote(field_validation)}: supported values: {supported}"
        raise Invalid.of(options, "meta.k8s.io", "",
                         [Cause(FIELD_NOT_SUPPORTED, detail, "fieldValidation")])
    return field_validation or WARN


def check(field_validation: str, group: str, version: str, kind: str,
          obj: Mapping[str, Any] | bytes | str, *, options: str = "CreateOptions") -> list[str]:
    """Apply `fieldValidation` to a create or update body; return the warnings to send.

    Strict raises BadRequest with kube-apiserver's message (`Deployment in version "v1"
    cannot be handled as a Deployment: strict decoding error: unknown field "spec.x"`); Warn,
    and an absent directive, return one warning per error; Ignore returns none. An unsupported
    directive raises Invalid naming `options`. Pass the raw body to catch duplicate keys.
    """
    directive = validate_directive(field_validation, options=options)
    if directive == IGNORE:
        return []
    errors = strict_errors(group, version, kind, obj)
    if errors and directive == STRICT:
        raise BadRequest(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                         f"strict decoding error: {', '.join(errors)}")
    return errors


class _Prune(_Walk):
    """Removes the fields a kind does not have, in place (what decoding into Go types does)."""

    def struct(self, fields: Mapping[str, tuple[str, int]], node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        for key in [k for k in node if k not in fields]:
            del node[key]
        for key, value in node.items():
            known = fields[key]
            self.field(known[0], known[1], value, _join(path, key))


def prune(group: str, version: str, kind: str, obj: dict[str, Any]) -> None:
    """Drop unknown fields from `obj` (Kubernetes never stores them, whatever fieldValidation)."""
    message = message_for(group, version, kind)
    if message is not None:
        _Prune().struct(json_fields(message, typed=True), obj, "")
