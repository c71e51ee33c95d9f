"""The REST verbs over HTTP: parse the URL into (resource, namespace, name, subresource), decode
the body, call the resource's Store, encode the answer (object, List, Table or watch stream).

Paths: /api/v1/... and /apis/<group>/<version>/..., then `[namespaces/<ns>/]<resource>
[/<name>[/<subresource>]]`. Everything a client can get wrong is a 4xx Status, never a 500.
Bodies, patches, managed fields and Tables are all in the requested version; the Store converts
to and from the version objects are stored as, and watch events are converted here.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from controlplane.api import errors, patch
from controlplane.api.selectors import FieldSelector, LabelSelector
from controlplane.apiserver import fieldmanagement as fm
from controlplane.apiserver import negotiation, printers, typecheck
from controlplane.apiserver.registry.resources import ResourceInfo, lookup
from controlplane.apiserver.registry.store import ListOptions, Store
from controlplane.apiserver.registry.subresources import Subresources
from controlplane.apiserver.storage import codec

Object = dict[str, Any]
BOOKMARK_INTERVAL = 10.0


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def parse_target(group: str, version: str, segments: list[str]) -> Target:
    """Resolve the path after the group/version; 404 for anything we do not serve."""
    def resource(name: str) -> ResourceInfo:
        info = lookup(group, version, name)
        if info is None:
            raise errors.NotFound("the server could not find the requested resource")
        return info

    target: Target | None = None
    if len(segments) >= 3 and segments[0] == "namespaces":
        info = lookup(group, version, segments[2])
        if info is not None and info.namespaced:
            if len(segments) > 5:
                raise errors.NotFound("the server could not find the requested resource")
            target = Target(info, segments[1], *(segments[3:5] + ["", ""])[:2])
    if target is None:
        if not segments or len(segments) > 3:
            raise errors.NotFound("the server could not find the requested resource")
        rest = segments[1:] + ["", ""]
        target = Target(resource(segments[0]), "", rest[0], rest[1])
    if target.subresource and target.info.subresource(target.subresource) is None:
        raise errors.NotFound("the server could not find the requested resource")
    return target


def _query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def list_options(request: web.Request, info: ResourceInfo) -> ListOptions:
    query = request.query
    opts = ListOptions(resource_version=query.get("resourceVersion", ""),
                       continue_token=query.get("continue", ""))
    if query.get("labelSelector"):
        opts.label_selector = LabelSelector.parse(query["labelSelector"])
    if query.get("fieldSelector"):
        opts.field_selector = FieldSelector.parse(query["fieldSelector"])
        _check_field_labels(opts.field_selector, info)
    if query.get("limit"):
        try:
            opts.limit = max(0, int(query["limit"]))
        except ValueError:
            raise errors.BadRequest(f"invalid limit: {query['limit']!r}") from None
    return opts


def _check_field_labels(selector: FieldSelector, info: ResourceInfo) -> None:
    """Refuse field labels the kind cannot select on, in kube-apiserver's words: kinds with
    selectable fields of their own convert labels themselves, the rest use the default that
    knows only the metadata fields. A version stored as another may rename its labels."""
    if info.conversion is not None and info.conversion.field_labels is not None:
        info.conversion.field_selector(selector)
        return
    supported = info.strategy.field_set({"metadata": {}})
    for label in sorted(selector.fields()):
        if label in supported:
            continue
        if info.strategy.selectable_fields:
            raise errors.BadRequest(f"field label not supported: {label}")
        raise errors.BadRequest(f'"{label}" is not a known field selector: only '
                                '"metadata.name", "metadata.namespace"')


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.BadRequest(f'Invalid dry run value: "{value}": supported values: "All"')
    return bool(values)


def json_response(obj: Any, status: int = 200, content_type: str = "application/json") -> (
        web.Response):
    return web.Response(body=negotiation.response_body(codec.dumps(obj)), status=status,
                        headers={"Content-Type": content_type})


class ResourceHandler:
    """Dispatches one API request to the right store."""

    def __init__(self, stores: dict[ResourceInfo, Store]) -> None:
        self.stores = stores
        self.subresources = Subresources(stores)

    def store(self, target: Target) -> Store:
        return self.stores[target.info]

    async def handle(self, request: web.Request, group: str, version: str,
                     segments: list[str]) -> web.StreamResponse:
        target = parse_target(group, version, segments)
        method = request.method
        if target.subresource and target.subresource != "status":
            return await self.subresources.handle(request, target, self)
        if not target.name:
            if method == "GET":
                if _query_bool(request, "watch"):
                    return await self.watch(request, target)
                return await self.list(request, target)
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
        else:
            if method == "GET":
                return await self.get(request, target)
            if method == "PUT":
                return await self.update(request, target)
            if method == "PATCH":
                return await self.patch(request, target)
            if method == "DELETE" and not target.subresource:
                return await self.delete(request, target)
        raise errors.MethodNotAllowed("the server does not allow this method on the requested "
                                      "resource")

    # -- encoding --------------------------------------------------------------------------------

    def respond(self, request: web.Request, target: Target, obj: Object,
                status: int = 200) -> web.Response:
        if negotiation.wants_table(request.headers.get("Accept")) and status == 200 and (
                not target.subresource):
            table = printers.table(target.info.resource, target.info.group, [obj],
                                   include_object=request.query.get("includeObject", "Metadata"),
                                   resource_version=obj["metadata"].get("resourceVersion", ""))
            return json_response(table, content_type=negotiation.TABLE_CONTENT_TYPE)
        return json_response(obj, status)

    async def body(self, request: web.Request, target: Target,
                   options: str = "CreateOptions") -> Object:
        raw = await request.read()
        obj = negotiation.decode_object(raw, request.headers.get("Content-Type"))
        expected_version = target.info.api_version
        if target.subresource == "scale" or target.info.resource == "pods" and (
                target.subresource in ("binding", "eviction")):
            return obj
        if obj.get("apiVersion") not in (None, "", expected_version):
            raise errors.BadRequest(f"the API version in the data ({obj['apiVersion']}) does not "
                                    f"match the expected API version ({expected_version})")
        if obj.get("kind") not in (None, "", target.info.kind):
            raise errors.BadRequest(f"the kind in the data ({obj['kind']}) does not match the "
                                    f"expected kind ({target.info.kind})")
        info = target.info
        typecheck.decode_body(info.group, info.version, info.kind, obj)
        fm.validate_fields(request, info, obj, raw, options)
        return obj

    # -- verbs -----------------------------------------------------------------------------------

    async def get(self, request: web.Request, target: Target) -> web.Response:
        obj = await self.store(target).get(target.namespace, target.name,
                                           resource_version=request.query.get(
                                               "resourceVersion", ""))
        return self.respond(request, target, obj)

    async def list(self, request: web.Request, target: Target) -> web.Response:
        page = await self.store(target).list(target.namespace, list_options(request, target.info))
        if negotiation.wants_table(request.headers.get("Accept")):
            table = printers.table(target.info.resource, target.info.group, page.items,
                                   include_object=request.query.get("includeObject", "Metadata"),
                                   resource_version=page.resource_version,
                                   continue_token=page.continue_token)
            return json_response(table, content_type=negotiation.TABLE_CONTENT_TYPE)
        metadata: Object = {"resourceVersion": page.resource_version}
        if page.continue_token:
            metadata["continue"] = page.continue_token
            if page.remaining is not None:
                metadata["remainingItemCount"] = page.remaining
        return json_response({"kind": f"{target.info.kind}List",
                              "apiVersion": target.info.api_version,
                              "metadata": metadata, "items": page.items})

    async def create(self, request: web.Request, target: Target) -> web.Response:
        obj = await self.body(request, target)
        obj = fm.record_update(target.info, None, obj, fm.manager_of(request))
        created = await self.store(target).create(target.namespace, obj,
                                                  dry_run=dry_run(request))
        return fm.add_warnings(request, json_response(created, 201))

    async def update(self, request: web.Request, target: Target) -> web.Response:
        obj = await self.body(request, target, "UpdateOptions")
        info, manager, sub = target.info, fm.manager_of(request), target.subresource
        updated, created = await self.store(target).update(
            target.namespace, target.name, obj, subresource=sub, dry_run=dry_run(request),
            manage=lambda live, new: fm.record_update(info, live, new, manager, sub))
        return fm.add_warnings(request, json_response(updated, 201 if created else 200))

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        patch_type, parsed = negotiation.decode_patch(await request.read(),
                                                      request.headers.get("Content-Type"))
        store = self.store(target)
        if patch_type == negotiation.APPLY_PATCH:
            return await self.apply(request, target, parsed)
        info, manager = target.info, fm.manager_of(request)
        fm.validate_directive(request)

        def change(current: Object) -> Object:
            patched = apply_patch(patch_type, current, parsed, info)
            check_patched(patched, target)
            fm.prune(info, patched)
            return fm.record_update(info, current, patched, manager, target.subresource)

        updated = await store.modify(target.namespace, target.name, change,
                                     subresource=target.subresource, dry_run=dry_run(request))
        return self.respond(request, target, updated)

    async def apply(self, request: web.Request, target: Target, applied: Object) -> web.Response:
        """Server-side apply: create when absent, otherwise merge the applied configuration."""
        manager = fm.manager_of(request, required=True)
        force = _query_bool(request, "force")
        store = self.store(target)
        info = target.info
        for field, what, expected in (("kind", "kind", info.kind),
                                      ("apiVersion", "version", info.api_version)):
            given = applied.get(field) if isinstance(applied.get(field), str) else ""
            if given != expected:
                raise errors.BadRequest(f"Incorrect {what} specified in apply patch. Specified "
                                        f"patch {what}: {given}, expected: {expected}")
        typecheck.decode_body(info.group, info.version, info.kind, applied)
        name = (applied.get("metadata") or {}).get("name")
        if name and name != target.name:
            raise errors.BadRequest(f"the name of the object ({name}) does not match the name "
                                    f"on the URL ({target.name})")
        fm.validate_fields(request, info, applied, b"", "PatchOptions")
        try:
            await store.get(target.namespace, target.name)
        except errors.NotFound:
            applied.setdefault("metadata", {})["name"] = target.name
            new = fm.apply(info, None, applied, manager, force, target.subresource)
            created = await store.create(target.namespace, new, dry_run=dry_run(request))
            return fm.add_warnings(request, json_response(created, 201))

        def change(current: Object) -> Object:
            merged = fm.apply(info, current, applied, manager, force, target.subresource)
            check_patched(merged, target)
            return merged

        updated = await store.modify(target.namespace, target.name, change,
                                     subresource=target.subresource, dry_run=dry_run(request))
        return json_response(updated)

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        options = await delete_options(request)
        obj, deleted_now = await self.store(target).delete(
            target.namespace, target.name, options, dry_run=dry_run(request))
        if deleted_now and target.info.resource != "pods":
            return json_response({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": target.name, "group": target.info.group,
                            "kind": target.info.resource,
                            "uid": obj["metadata"].get("uid", "")}})
        return json_response(obj)

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        options = await delete_options(request)
        store = self.store(target)
        page = await store.list(target.namespace, list_options(request, target.info))
        deleted = []
        for item in page.items:
            meta = item["metadata"]
            try:
                obj, _ = await store.delete(meta.get("namespace", ""), meta["name"], options,
                                            dry_run=dry_run(request))
            except errors.NotFound:
                continue
            deleted.append(obj)
        return json_response({"kind": f"{target.info.kind}List",
                              "apiVersion": target.info.api_version,
                              "metadata": {"resourceVersion": page.resource_version},
                              "items": deleted})

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        store = self.store(target)
        opts = list_options(request, target.info)
        timeout = request.query.get("timeoutSeconds")
        try:
            watcher = store.watch(target.namespace, opts)
        except errors.Expired as exc:  # as Kubernetes' watch cache: a stream with one ERROR
            return await _error_stream(request, exc)
        table = negotiation.wants_table(request.headers.get("Accept"))
        response = web.StreamResponse(headers={
            "Content-Type": negotiation.TABLE_CONTENT_TYPE if table else "application/json",
            "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        bookmarks = _query_bool(request, "allowWatchBookmarks")
        try:
            await asyncio.wait_for(
                _stream(response, watcher, target, table, bookmarks, store,
                        opts.resource_version),
                float(timeout) if timeout else None)
        except (TimeoutError, ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watcher.close()
        return response


def apply_patch(patch_type: str, current: Object, parsed: Any, info: ResourceInfo) -> Object:
    """The object `current` becomes under `parsed` of `patch_type` (a 4xx when it cannot)."""
    if patch_type == negotiation.JSON_PATCH:
        result = patch.apply_json_patch(current, parsed)
    elif patch_type == negotiation.MERGE_PATCH:
        result = patch.apply_merge_patch(current, parsed)
    else:
        schema = patch.schema_for(info.group, info.version, info.kind)
        if schema is None:
            raise errors.UnsupportedMediaType(
                "strategic merge patch is not supported for this kind; use merge patch")
        result = patch.apply_strategic_merge_patch(current, parsed, schema)
    if not isinstance(result, dict):
        raise errors.BadRequest("the patch produced something that is not an object")
    return result


def check_patched(patched: Object, target: Target) -> None:
    """What kube-apiserver checks of a patch's result before the update: it decodes as the
    kind (422 on the field `patch`) and still names the object of the URL (400)."""
    info = target.info
    typecheck.decode_patched(info.group, info.version, info.kind, patched)
    metadata = patched.get("metadata") or {}
    name = metadata.get("name") or ""
    if name != target.name:
        raise errors.BadRequest(f"the name of the object ({name}) does not match the name on "
                                f"the URL ({target.name})")
    if info.namespaced and metadata.get("namespace") not in (None, "", target.namespace):
        raise errors.BadRequest("the namespace of the provided object does not match the "
                                "namespace sent on the request")


async def delete_options(request: web.Request) -> Object:
    raw = await request.read()
    options: Object = {}
    if raw.strip():
        decoded = negotiation.decode_json(raw)
        if not isinstance(decoded, dict):
            raise errors.BadRequest("DeleteOptions must be an object")
        error = typecheck.decode_as("meta.DeleteOptions", decoded)
        if error:
            raise errors.BadRequest(f"DeleteOptions in version \"v1\" cannot be handled as a "
                                    f"DeleteOptions: {error}")
        options = decoded
    query = request.query
    if "gracePeriodSeconds" in query:
        try:
            options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        except ValueError:
            raise errors.BadRequest("invalid gracePeriodSeconds") from None
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if query.get("orphanDependents") == "true" or options.get("orphanDependents") is True:
        options.setdefault("propagationPolicy", "Orphan")
    return options


def _event_object(obj: Object, target: Target, table: bool, first: bool) -> Object:
    if not table:
        return obj
    t = printers.table(target.info.resource, target.info.group, [obj],
                       resource_version=obj["metadata"].get("resourceVersion", ""))
    if not first:
        t["columnDefinitions"] = []
    return t


async def _stream(response: web.StreamResponse, watcher: Any, target: Target, table: bool,
                  bookmarks: bool, store: Store, start: str) -> None:
    first = True
    last = int(start) if start.isdigit() else 0  # never bookmark behind what was sent
    events = watcher.__aiter__()
    while True:
        try:
            event = await asyncio.wait_for(events.__anext__(), BOOKMARK_INTERVAL)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if bookmarks:
                mark = {"type": "BOOKMARK", "object": {
                    "kind": target.info.kind, "apiVersion": target.info.api_version,
                    "metadata": {"resourceVersion": str(max(last, store.cache.revision))}}}
                await response.write(json.dumps(mark).encode() + b"\n")
            continue
        obj = event.object if event.type == "ERROR" else store.from_storage(event.object)
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        last = max(last, int(rv)) if str(rv).isdigit() else last
        obj = _event_object(obj, target, table, first)
        first = False
        line = json.dumps({"type": event.type, "object": obj}, separators=(",", ":"))
        await response.write(line.encode() + b"\n")


async def _error_stream(request: web.Request, exc: errors.APIError) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(json.dumps({"type": "ERROR", "object": exc.status()}).encode() + b"\n")
    await response.write_eof()
    return response
