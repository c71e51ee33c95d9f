"""Server-side apply and ownership for other writes: the two entry points of this package.

`apply` serves PATCH with application/apply-patch+yaml: it merges the configuration into the
live object, removes what the manager applied before and omits now (unless someone else owns
it), refuses to change another manager's field unless forced (409 in Kubernetes' words) and
records the manager's fields as its Apply entry. `update` records ownership for any other
write (POST, PUT, non-apply PATCH): changed fields move to the writer's Update entry. Both are
pure and return a new object with metadata.managedFields rewritten. They stack the layers of
k8s.io/apiserver's fieldmanager: strip-meta, reset fields (status), entry timestamps, capped
updaters and kubectl's client-side-apply upgrade (lastAppliedManager and lastAppliedUpdater).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from controlplane.api.errors import BadRequest, Cause, Conflict, InternalError, Unknown
from controlplane.api.managedfields.fieldpath import (
    FieldsError,
    FieldSet,
    go_json,
    iterate,
    path_string,
    recursive_difference,
)
from controlplane.api.managedfields.managers import (
    APPLY,
    STRIPPED,
    UPDATE,
    Entry,
    Identity,
    Managed,
    cap_updaters,
    decode,
    describe,
    drop_empty,
    encode,
    identity,
    identity_json,
    is_reset,
)
from controlplane.api.managedfields.typed import (
    SchemaError,
    compare,
    drop_applied_nulls,
    equal,
    field_set,
    merge,
    prune,
    root_meta,
)
from controlplane.api.patch.schema import FieldMeta, schema_for

Object = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
KUBECTL = "kubectl"  # the one manager whose apply upgrades from client-side apply
CONFLICT_CAUSE = "FieldManagerConflict"
_ANNOTATIONS_LIMIT = 256 * 1024  # TotalAnnotationSizeLimitB
# Fields each strategy resets, so nobody owns them there: status on the main resource, spec
# on the status subresource.
_RESET_FIELDS: dict[str, FieldSet] = {"": {("f:status",)}, "status": {("f:spec",)}}


@dataclass(frozen=True)
class _Request:
    """One apply: the live object (managedFields removed) and the configuration, both ours."""

    live: Object
    config: Object
    ident: Identity
    api_version: str
    meta: FieldMeta
    builtin: bool
    reset: FieldSet


class _Conflicts(Exception):
    def __init__(self, conflicts: dict[Identity, FieldSet]) -> None:
        super().__init__("apply conflicts")
        self.conflicts = conflicts


def apply(live: Object | None, applied: Object, *, manager: str, force: bool, group: str,
          version: str, kind: str, now: str, subresource: str = "") -> Object:
    """Return the object after `manager` server-side applies `applied` at time `now`.

    `live` is None when the apply creates the object. Raise Conflict when the apply would
    change fields other managers own and `force` is false, BadRequest when `applied` carries
    managedFields, and InternalError when a list item lacks its merge key.
    """
    api_version = f"{group}/{version}" if group else version
    schema = schema_for(group, version, kind)
    if _metadata(applied).get("managedFields") is not None:
        raise BadRequest("metadata.managedFields must be nil")
    try:
        managed = decode(_metadata(live).get("managedFields"))
    except FieldsError as err:
        raise InternalError(f"failed to decode managed fields: {err}") from None
    request = _Request(_strip(live), copy.deepcopy(applied),
                       identity(manager, APPLY, api_version, subresource), api_version,
                       root_meta(schema), schema is not None, _RESET_FIELDS.get(subresource, set()))
    gvk = f"{group}/{version}, Kind={kind}"
    _check_typed(request.config, request.meta, "patch", gvk, strict=True)
    _check_typed(request.live, request.meta, "live", gvk, strict=False)
    result, managed = _apply_or_upgrade(request, managed, manager, force)
    if request.ident in managed and not equal(result, request.live):
        managed[request.ident].time = now
    if manager == KUBECTL:
        _sync_last_applied(result, request.config)
    return _with_managed(drop_applied_nulls(result, request.config, request.meta), managed)


def update(live: Object | None, new: Object, *, manager: str, group: str, version: str,
           kind: str, now: str, operation: str = UPDATE, subresource: str = "") -> Object:
    """Return `new` with ownership recorded for a non-apply write by `manager` at `now`.

    Fields that differ from `live` (all of them on create, `live` None) become the manager's
    and leave every other entry; removed fields leave every entry. A client may rewrite
    managedFields by sending them (`[{}]` clears them); a subresource write may not.
    """
    api_version = f"{group}/{version}" if group else version
    schema = schema_for(group, version, kind)
    meta = root_meta(schema)
    managed = _decode_live_or_new(live, new, subresource)
    result = _strip(new)
    try:
        changes = compare(_strip(live), result, meta, builtin=schema is not None)
    except SchemaError:
        return result  # fieldmanager's UpdateNoErrors: untrackable, so managedFields go
    reset = _RESET_FIELDS.get(subresource, set())
    visible = changes.exclude(reset)
    for entry in managed.values():
        entry.fields = entry.fields - visible.modified - visible.added - visible.removed
    drop_empty(managed)
    own = recursive_difference((changes.modified | changes.added) - changes.removed, reset)
    own -= STRIPPED
    if own:
        ident = identity(manager, operation, api_version, subresource)
        previous = managed.get(ident)
        managed[ident] = Entry(manager, operation, api_version, subresource,
                               own | (previous.fields if previous else set()), now)
    cap_updaters(managed)
    return _with_managed(result, managed)


def _apply_fields(request: _Request, managed: Managed, force: bool) -> tuple[Object, Managed]:
    """Merge, prune and take ownership (structured-merge-diff's Updater.Apply)."""
    managed = {i: copy.copy(entry) for i, entry in managed.items()}
    last = managed.get(request.ident)
    applied = recursive_difference(field_set(request.config, request.meta), request.reset)
    manager, _, _, subresource = request.ident
    managed[request.ident] = Entry(manager, APPLY, request.api_version, subresource, applied,
                                   last.time if last else None)
    everyone: FieldSet = set().union(*(entry.fields for entry in managed.values()))
    merged = merge(request.live, request.config, request.meta)
    merged = prune(merged, last.fields if last else set(), everyone, request.meta)
    changes = compare(request.live, merged, request.meta,
                      builtin=request.builtin).exclude(request.reset)
    changed = changes.modified | changes.added
    conflicts = {i: entry.fields & changed for i, entry in managed.items()
                 if i != request.ident and entry.fields & changed}
    if conflicts and not force:
        raise _Conflicts(conflicts)
    for ident, entry in managed.items():
        if ident != request.ident:
            entry.fields = entry.fields - changed - changes.removed
    managed[request.ident].fields = applied - STRIPPED
    drop_empty(managed)
    return merged, managed


def _apply_or_upgrade(request: _Request, managed: Managed, manager: str,
                      force: bool) -> tuple[Object, Managed]:
    """Apply; for kubectl, force the conflicts its last-applied annotation accounts for.

    That is Kubernetes' upgrade from client-side to server-side apply: fields whose
    last-applied value still matches the live object were kubectl's, so taking them over
    from `kubectl-client-side-apply` (or anyone) is not a conflict. Others still are.
    """
    try:
        return _apply_fields(request, managed, force)
    except _Conflicts as err:
        conflicts = err.conflicts
    if manager == KUBECTL:
        allowed = _client_side_fields(request)
        conflicts = {i: s - allowed for i, s in conflicts.items() if s - allowed}
        if not conflicts:
            return _apply_fields(request, managed, True)
    raise conflict_error(conflicts)


def _client_side_fields(request: _Request) -> FieldSet:
    """The fields the last-applied annotation sets to the values the live object still has."""
    text = (_metadata(request.live).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return set()
    if not isinstance(last, dict) or last.get("apiVersion") != request.api_version:
        return set()
    try:
        fields = field_set(last, request.meta)
        drift = compare(last, request.live, request.meta, builtin=request.builtin)
    except SchemaError:
        return set()
    return fields - drift.modified - drift.added - drift.removed


def _sync_last_applied(obj: Object, config: Object) -> None:
    """Keep an existing last-applied annotation equal to what kubectl applied server-side.

    So a later client-side `kubectl apply` still works (the downgrade path); an annotation
    that would overflow the 256 KiB annotations limit is dropped instead.
    """
    annotations = _metadata(obj).get("annotations")
    if not isinstance(annotations, dict) or not annotations.get(LAST_APPLIED):
        return
    record = copy.deepcopy(config)
    recorded = _metadata(record).get("annotations")
    if isinstance(recorded, dict):
        recorded.pop(LAST_APPLIED, None)
    annotations = dict(annotations, **{LAST_APPLIED: go_json(record) + "\n"})
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > _ANNOTATIONS_LIMIT:
        del annotations[LAST_APPLIED]
    obj["metadata"]["annotations"] = annotations


def conflict_error(conflicts: dict[Identity, FieldSet]) -> Conflict:
    """Build the 409 kube-apiserver answers an apply that conflicts, message and causes."""
    managers = sorted(conflicts, key=identity_json)
    pairs = [(ident, path) for ident in managers for path in iterate(conflicts[ident])]
    causes = [Cause(CONFLICT_CAUSE, f"conflict with {describe(ident)}", path_string(path))
              for ident, path in pairs]
    if len(pairs) == 1:
        ident, path = pairs[0]
        message = f"conflict with {describe(ident)}: {path_string(path)}"
        return Conflict(f"Apply failed with 1 conflict: {message}", causes=causes)
    lines = []
    for ident in managers:
        lines.append(f"conflicts with {describe(ident)}:")
        lines.extend(f"- {path_string(path)}" for path in iterate(conflicts[ident]))
    return Conflict(f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines),
                    causes=causes)


def _decode_live_or_new(live: Object | None, new: Object, subresource: str) -> Managed:
    """Pick the entries to start from, as fieldmanager's decodeLiveOrNew does."""
    if not subresource:
        sent = _metadata(new).get("managedFields")
        if is_reset(sent):
            return {}
        try:
            managed = decode(sent)
        except FieldsError:
            managed = {}
        if managed:
            return managed
    try:
        return decode(_metadata(live).get("managedFields"))
    except FieldsError:
        return {}


def _check_typed(obj: Object, meta: FieldMeta, what: str, gvk: str, *, strict: bool) -> None:
    try:
        field_set(obj, meta, strict=strict)
    except SchemaError as err:
        metadata = _metadata(obj)
        name = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        raise Unknown(f"failed to create typed {what} object ({name}; {gvk}): "
                            f"{err}") from None


def _metadata(obj: Object | None) -> dict[str, Any]:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _strip(obj: Object | None) -> Object:
    """A private copy of `obj` without metadata.managedFields ({} for no object)."""
    out = copy.deepcopy(obj) if obj is not None else {}
    _metadata(out).pop("managedFields", None)
    return out


def _with_managed(obj: Object, managed: Managed) -> Object:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = obj["metadata"] = {}
    if managed:
        metadata["managedFields"] = encode(managed)
    else:
        metadata.pop("managedFields", None)
    return obj
