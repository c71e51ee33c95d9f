"""Subresources beyond status: scale (autoscaling/v1 Scale of deployments and replica sets),
pods/binding (a compare-and-set of spec.nodeName), pods/eviction, and the node-proxied pods/log,
pods/exec, pods/attach (relayed to the pod's node agent by controlplane/apiserver/nodeproxy.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from controlplane.api import errors
from controlplane.api.selectors import LabelSelector
from controlplane.apiserver import negotiation, typecheck
from controlplane.apiserver.nodeproxy import NodeProxy
from controlplane.apiserver.registry.resources import ResourceInfo
from controlplane.apiserver.registry.store import Store

if TYPE_CHECKING:
    from controlplane.apiserver.handlers import ResourceHandler, Target

Object = dict[str, Any]


def scale_of(obj: Object) -> Object:
    """The autoscaling/v1 Scale view of a deployment or replica set."""
    m = obj["metadata"]
    selector = LabelSelector.from_object((obj.get("spec") or {}).get("selector") or {})
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in m},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": selector.to_query()},
    }


def _decode(raw: bytes, request: web.Request, group: str, version: str, kind: str) -> Object:
    """A subresource's request body, decoded and type-checked as `kind`."""
    body = negotiation.decode_object(raw, request.headers.get("Content-Type"))
    typecheck.decode_body(group, version, kind, body)
    return body


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status,
                        content_type="application/json")


class Subresources:
    def __init__(self, stores: dict[ResourceInfo, Store]) -> None:
        self.stores = stores
        # pods/log, exec, attach; the server gives it the kubelet client certificate.
        self.node_proxy = NodeProxy(stores)

    async def handle(self, request: web.Request, target: Target,
                     handler: ResourceHandler) -> web.StreamResponse:
        store = self.stores[target.info]
        sub, method = target.subresource, request.method
        if sub == "scale":
            return await self.scale(request, target, store, handler)
        if sub == "binding" and method == "POST":
            return await self.binding(request, target, store)
        if sub == "eviction" and method == "POST":
            return await self.eviction(request, target, store)
        if sub in ("log", "exec", "attach") and target.info.resource == "pods":
            return await self.node_proxy.handle(request, target.namespace, target.name, sub)
        if sub == "finalize" and method == "PUT":
            return await handler.update(request, target)
        raise errors.MethodNotAllowed("the server does not allow this method on the requested "
                                      "resource")

    async def scale(self, request: web.Request, target: Target, store: Store,
                    handler: ResourceHandler) -> web.Response:
        from controlplane.apiserver.handlers import apply_patch, dry_run

        if request.method == "GET":
            return _json(scale_of(await store.get(target.namespace, target.name)))
        if request.method == "PUT":
            body = _decode(await request.read(), request, "autoscaling", "v1", "Scale")
            patch_type, parsed = negotiation.MERGE_PATCH, {"spec": body.get("spec") or {}}
            expected = (body.get("metadata") or {}).get("resourceVersion")
        elif request.method == "PATCH":
            patch_type, parsed = negotiation.decode_patch(await request.read(),
                                                          request.headers.get("Content-Type"))
            expected = None
        else:
            raise errors.MethodNotAllowed("the server does not allow this method")
        scale_info = ResourceInfo("autoscaling", "v1", "scale", "Scale", True,
                                  target.info.strategy)

        async def mutate(current: Object) -> Object:
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise errors.Conflict.modified(target.info.resource, target.info.group,
                                               target.name)
            wanted = apply_patch(patch_type, scale_of(current), parsed, scale_info)
            typecheck.decode_patched("autoscaling", "v1", "Scale", wanted)
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.Invalid.of("Scale", "autoscaling", target.name, [errors.Cause(
                    errors.FIELD_INVALID, f"Invalid value: {replicas}: must be greater than or "
                    "equal to 0", "spec.replicas")])
            updated = dict(current)
            updated["spec"] = {**(current.get("spec") or {}), "replicas": replicas}
            return store.prepare_update(current, updated, "")

        updated = await store.guaranteed_update(target.namespace, target.name, mutate,
                                                dry_run=dry_run(request))
        return _json(scale_of(updated))

    async def binding(self, request: web.Request, target: Target, store: Store) -> web.Response:
        body = _decode(await request.read(), request, "", "v1", "Binding")
        node = ((body.get("target") or {}).get("name")) or ""
        if not node:
            raise errors.Invalid.of("Binding", "", target.name, [errors.Cause(
                errors.FIELD_REQUIRED, "Required value", "target.name")])

        async def bind(current: Object) -> Object:
            spec = current.setdefault("spec", {})
            if current["metadata"].get("deletionTimestamp"):
                raise errors.Conflict(f"pod {target.name} is being deleted, cannot be "
                                      f"assigned to a host", name=target.name, kind="pods")
            if spec.get("nodeName"):
                raise errors.Conflict(f"pod {target.name} is already assigned to node "
                                      f'"{spec["nodeName"]}"', name=target.name, kind="pods")
            spec["nodeName"] = node
            conditions = current.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
            from controlplane.api.meta import now_rfc3339
            conditions.append({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": None, "lastTransitionTime": now_rfc3339()})
            return current

        await store.guaranteed_update(target.namespace, target.name, bind)
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Success", "code": 201}, 201)

    async def eviction(self, request: web.Request, target: Target, store: Store) -> web.Response:
        body = _decode(await request.read(), request, "policy", "v1", "Eviction")
        options = body.get("deleteOptions") or {}
        await store.delete(target.namespace, target.name, options)
        return _json({"kind": "Status", "apiVersion": "v1", "metadata": {},
                      "status": "Success", "code": 201}, 201)
