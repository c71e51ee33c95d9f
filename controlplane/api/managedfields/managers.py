"""metadata.managedFields entries: identity, decoding, encoding and the cap on updaters.

Kubernetes keys an entry by (manager, operation, apiVersion, subresource) but leaves the
apiVersion out for Apply, so an applier keeps one entry across versions while an updater gets
one per version; entries with the same identity collapse, the last one decoded winning. The
encoded list is sorted as kube-apiserver sorts it (operation, time, manager, apiVersion,
subresource), an entry whose field set is empty is dropped, and Update entries beyond ten are
folded, oldest first, into per-version `ancient-changes` entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from controlplane.api.managedfields.fieldpath import (
    FieldsError,
    FieldSet,
    from_fields,
    go_json,
    to_fields,
)

APPLY = "Apply"
UPDATE = "Update"
MAX_UPDATE_MANAGERS = 10  # fieldmanager.DefaultMaxUpdateManagers
ANCIENT_CHANGES = "ancient-changes"

Identity = tuple[str, str, str, str]  # manager, operation, apiVersion ("" for Apply), subresource

# Never owned by anyone: typemeta and the system-set metadata (fieldmanager's stripMetaManager).
STRIPPED: FieldSet = {
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *(("f:metadata", "f:" + name) for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion")),
}


@dataclass
class Entry:
    """One manager's claim: who, by which operation, at which version, over which fields."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: FieldSet
    time: str | None = None

    @property
    def identity(self) -> Identity:
        return identity(self.manager, self.operation, self.api_version, self.subresource)


Managed = dict[Identity, Entry]


def identity(manager: str, operation: str, api_version: str, subresource: str) -> Identity:
    """Key an entry the way BuildManagerIdentifier does (no apiVersion for Apply)."""
    return manager, operation, "" if operation == APPLY else api_version, subresource


def identity_json(ident: Identity) -> str:
    """The identifier as kube-apiserver spells it; conflict messages sort managers by it."""
    names = ("manager", "operation", "apiVersion", "subresource")
    return "{" + ",".join(f'"{n}":{go_json(v)}' for n, v in zip(names, ident, strict=True)
                          if v) + "}"


def describe(ident: Identity) -> str:
    """Name a manager in a conflict: `"kubectl"`, `"x" using v1`, `"x" with subresource "s"`."""
    manager, operation, api_version, subresource = ident
    text = json.dumps(manager, ensure_ascii=False)
    if subresource:
        text += f" with subresource {json.dumps(subresource, ensure_ascii=False)}"
    return f"{text} using {api_version}" if operation == UPDATE else text


def decode(raw: Any) -> Managed:
    """Decode metadata.managedFields; raise FieldsError as DecodeManagedFields fails."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise FieldsError("managedFields must be a list")
    out: Managed = {}
    for n, item in enumerate(raw):
        if not isinstance(item, dict):
            raise FieldsError(f"managed fields entry {n} is not an object")
        fields_type = item.get("fieldsType") or ""
        if not fields_type:
            raise FieldsError(f"missing fieldsType in managed fields entry {n}")
        if fields_type != "FieldsV1":
            raise FieldsError(f'invalid fieldsType "{fields_type}" in managed fields entry {n}')
        entry = Entry(str(item.get("manager") or ""), str(item.get("operation") or ""),
                      str(item.get("apiVersion") or ""), str(item.get("subresource") or ""),
                      from_fields(item.get("fieldsV1") or {}), item.get("time") or None)
        out[entry.identity] = entry
    return out


def is_reset(raw: Any) -> bool:
    """Whether a client sent `[{}]`: the request to strip managedFields from the object."""
    return isinstance(raw, list) and bool(raw) and all(item == {} for item in raw)


def encode(managed: Managed) -> list[dict[str, Any]]:
    """Encode entries as metadata.managedFields, in kube-apiserver's order."""
    entries = []
    for entry in managed.values():
        out: dict[str, Any] = {"manager": entry.manager, "operation": entry.operation,
                               "apiVersion": entry.api_version}
        if entry.time:
            out["time"] = entry.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = to_fields(entry.fields)
        if entry.subresource:
            out["subresource"] = entry.subresource
        entries.append(out)
    entries.sort(key=lambda e: (e["operation"], e.get("time", ""), e["manager"],
                                e["apiVersion"], e.get("subresource", "")))
    return entries


def drop_empty(managed: Managed) -> None:
    """Forget managers that own nothing any more."""
    for ident in [i for i, entry in managed.items() if not entry.fields]:
        del managed[ident]


def cap_updaters(managed: Managed, limit: int = MAX_UPDATE_MANAGERS) -> None:
    """Fold the oldest Update entries into `ancient-changes` ones until `limit` remain."""
    updaters = sorted((i for i, e in managed.items() if e.operation != APPLY),
                      key=lambda i: (managed[i].time or "", identity_json(i)))
    length = len(updaters)
    first_by_version: dict[str, Identity] = {}
    for ident in updaters:
        if length <= limit:
            break
        entry = managed[ident]
        bucket = identity(ANCIENT_CHANGES, UPDATE, entry.api_version, "")
        first = first_by_version.setdefault(entry.api_version, ident)
        if ident in (first, bucket):
            continue
        if bucket not in managed:
            moved = managed.pop(first)
            managed[bucket] = Entry(ANCIENT_CHANGES, UPDATE, moved.api_version, "",
                                    moved.fields, moved.time)
        merged = managed[bucket]
        merged.fields = merged.fields | entry.fields
        merged.time = entry.time
        del managed[ident]
        length -= 1
