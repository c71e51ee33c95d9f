"""The per-kind policy hooks the generic store calls, and their default behaviour.

A strategy never does I/O. The store calls, in order: `default` and `prepare_for_create` (wipe
status, set initial status) then `validate` on create; `prepare_for_update` (the main resource
keeps the old status; the status subresource keeps everything but status) then
`validate_update` on update. `field_set` gives the fields a fieldSelector may name.
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.api import validation
from controlplane.api.errors import FIELD_FORBIDDEN, FIELD_INVALID, FIELD_REQUIRED, Cause

Object = dict[str, Any]


def required(obj: Object, path: str) -> list[Cause]:
    """A FieldValueRequired cause when the dotted `path` is missing or empty in `obj`."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or node.get(part) in (None, "", [], {}):
            return [Cause(FIELD_REQUIRED, "Required value", path)]
        node = node[part]
    return []


def immutable(new: Any, old: Any, path: str) -> list[Cause]:
    if new != old:
        return [Cause(FIELD_INVALID, f"Invalid value: {_show(new)}: field is immutable", path)]
    return []


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return "null" if value is None else str(value).replace("'", '"')


def forbidden(path: str, detail: str) -> Cause:
    return Cause(FIELD_FORBIDDEN, f"Forbidden: {detail}", path)


class Strategy:
    """Defaults for any kind: spec/status split, generation on spec change, name checks."""

    has_status = True  # the kind has a status subresource the main resource ignores
    allow_create_on_update = False
    name_validator = staticmethod(validation.is_dns1123_subdomain)
    selectable_fields: tuple[str, ...] = ()  # dotted paths beyond metadata.name/namespace

    def default(self, obj: Object) -> None:
        """Fill Kubernetes' defaults into `obj` (in place)."""

    def initial_status(self, obj: Object) -> Object | None:
        """The status a new object starts with (None: no status)."""
        return None

    def prepare_for_create(self, obj: Object) -> None:
        if self.has_status:
            obj.pop("status", None)
            status = self.initial_status(obj)
            if status is not None:
                obj["status"] = status

    def prepare_for_update(self, new: Object, old: Object) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Object, old: Object) -> Object:
        """Return the object a status write produces: `old` with `new`'s status."""
        result = copy.deepcopy(old)
        if "status" in new:
            result["status"] = new["status"]
        else:
            result.pop("status", None)
        result["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion")
        return result

    def validate(self, obj: Object) -> list[Cause]:
        return []

    def validate_update(self, new: Object, old: Object) -> list[Cause]:
        return self.validate(new)

    def validate_status_update(self, new: Object, old: Object) -> list[Cause]:
        return []

    def spec_changed(self, new: Object, old: Object) -> bool:
        """Whether a write changes more than metadata and status (bumps generation)."""
        skip = ("metadata", "status", "kind", "apiVersion")
        return {k: v for k, v in new.items() if k not in skip} != {
            k: v for k, v in old.items() if k not in skip}

    def field_set(self, obj: Object) -> dict[str, str]:
        meta = obj.get("metadata") or {}
        fields = {"metadata.name": str(meta.get("name", "")),
                  "metadata.namespace": str(meta.get("namespace", ""))}
        for path in self.selectable_fields:
            node: Any = obj
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            fields[path] = "" if node is None else (
                str(node).lower() if isinstance(node, bool) else str(node))
        return fields


class NoStatusStrategy(Strategy):
    """Kinds without a status subresource (configmaps, secrets, roles, ...): written whole."""

    has_status = False

    def spec_changed(self, new: Object, old: Object) -> bool:
        return False
