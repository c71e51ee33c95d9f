"""What a write does besides storing: field validation and managed fields, per request.

- `fieldValidation` (Ignore / Warn / Strict, absent = Warn): Strict rejects unknown or duplicate
  fields with 400, Warn answers with `Warning` headers; unknown fields are then dropped, as
  decoding into Kubernetes' Go types drops them.
- `metadata.managedFields`: every create, update and patch records which manager owns which
  fields (operation Update); server-side apply (operation Apply) merges, prunes what the manager
  stopped applying, and reports conflicts with other managers (controlplane.api.managedfields).
"""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web

from controlplane.api import errors, managedfields, meta, strict
from controlplane.apiserver.registry.resources import ResourceInfo

Object = dict[str, Any]
R = TypeVar("R", bound=web.StreamResponse)
WARNINGS = web.RequestKey("warnings", list)


def manager_of(request: web.Request, *, required: bool = False) -> str:
    """The fieldManager query parameter, else the User-Agent's product (as Kubernetes)."""
    manager = request.query.get("fieldManager", "")
    if not manager:
        if required:
            raise errors.BadRequest("PATCH requests with application/apply-patch+yaml require a "
                                    "fieldManager query parameter")
        manager = (request.headers.get("User-Agent") or "unknown").split("/", 1)[0][:128]
    if len(manager) > 128 or not manager.isprintable():
        raise errors.Invalid.of("PatchOptions", "meta.k8s.io", "", [errors.Cause(
            errors.FIELD_INVALID, f'Invalid value: "{manager}": must be at most 128 '
            "printable characters", "fieldManager")])
    return manager


def validate_fields(request: web.Request, info: ResourceInfo, obj: Object, raw: bytes,
                    options: str) -> None:
    """Apply fieldValidation to a decoded body (raw: the JSON bytes, for duplicate keys)."""
    source: Object | bytes = raw if raw[:1] in (b"{", b" ", b"\n") else obj
    warnings = strict.check(request.query.get("fieldValidation", ""), info.group, info.version,
                            info.kind, source, options=options)
    if warnings:
        request[WARNINGS] = request.get(WARNINGS, []) + warnings
    strict.prune(info.group, info.version, info.kind, obj)


def add_warnings(request: web.Request, response: R) -> R:
    for warning in request.get(WARNINGS, []):
        response.headers.add("Warning", f'299 - "{warning}"')
    return response


def prune(info: ResourceInfo, obj: Object) -> None:
    """Drop the fields the kind does not have (a patch may add them)."""
    strict.prune(info.group, info.version, info.kind, obj)


def record_update(info: ResourceInfo, live: Object | None, new: Object, manager: str,
                  subresource: str = "") -> Object:
    """`new` with managedFields updated for a non-apply write by `manager`."""
    result = managedfields.update(live, new, manager=manager, group=info.group,
                                  version=info.version, kind=info.kind, now=meta.now_rfc3339(),
                                  subresource=subresource if subresource == "status" else "")
    return _keep_times(live, result)


def _keep_times(live: Object | None, result: Object) -> Object:
    """Keep the live managedFields when only their timestamps would change (a no-op write)."""
    if live is None:
        return result
    old = (live.get("metadata") or {}).get("managedFields") or []
    new = (result.get("metadata") or {}).get("managedFields") or []

    def timeless(entries: list[Object]) -> list[Object]:
        return [{k: v for k, v in e.items() if k != "time"} for e in entries]

    if old != new and timeless(old) == timeless(new):
        result["metadata"]["managedFields"] = old
    return result


def apply(info: ResourceInfo, live: Object | None, applied: Object, manager: str,
          force: bool, subresource: str = "") -> Object:
    """The object server-side apply makes of `live` (None: absent) and `applied`."""
    result = managedfields.apply(live, applied, manager=manager, force=force,
                                 group=info.group, version=info.version, kind=info.kind,
                                 now=meta.now_rfc3339(),
                                 subresource=subresource if subresource == "status" else "")
    return _keep_times(live, result)


def validate_directive(request: web.Request) -> None:
    """Reject an unsupported fieldValidation value on a patch (422, as Kubernetes)."""
    strict.validate_directive(request.query.get("fieldValidation", ""), options="PatchOptions")
