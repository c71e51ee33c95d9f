"""The Deployment controller: handlers, `sync(key)` and the writes its steps share.

`sync` claims the ReplicaSets the Deployment's selector matches (adopting orphans, releasing
strays), then: a Deployment being deleted only gets status; a paused one, or a replicas change,
is scaled (`sync.scale`) without starting a rollout; otherwise its strategy rolls it
(`rollout.rolling` / `rollout.recreate`). Rollbacks need nothing here: `kubectl rollout undo`
copies an old RS's template into the Deployment, whose template hash then finds that RS again.
Handlers map RS and pod events to the owning Deployment's key; they never call the API.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import controller_of
from controlplane.api.selectors import LabelSelector
from controlplane.client.events import WARNING
from controlplane.client.rest import DEPLOYMENTS, PODS, REPLICASETS
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    controller_ref,
    deep_copy,
    resolve_controller_ref,
    split_key,
)
from controlplane.controllers.deployment import progress, rollout, sync, util
from controlplane.controllers.refmanager import claim, recheck_owner
from controlplane.controllers.status import status_patch

log = logging.getLogger(__name__)
Object = dict[str, Any]


class DeploymentController(Controller):
    name = "deployment"
    component = "deployment-controller"
    kind = "Deployment"
    api_version = "apps/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = ctx.informers.lister(DEPLOYMENTS)
        self.rses = ctx.informers.lister(REPLICASETS)
        self.pods = ctx.informers.lister(PODS)
        self.deployments.informer.add_handlers(
            on_add=self.enqueue, on_update=lambda old, cur: self.enqueue(cur),
            on_delete=self.enqueue)
        self.rses.informer.add_handlers(on_add=self._add_rs, on_update=self._update_rs,
                                        on_delete=self._delete_rs)
        self.pods.informer.add_handlers(on_delete=self._delete_pod)

    def key(self, d: Object) -> str:
        return f"{d['metadata'].get('namespace')}/{d['metadata']['name']}"

    # -- handlers ---------------------------------------------------------------------------------

    def _owner(self, rs: Object, ref: Object | None) -> Object | None:
        return resolve_controller_ref(self.deployments, rs["metadata"].get("namespace", ""),
                                      ref, self.kind)

    def _deployments_for_rs(self, rs: Object) -> list[Object]:
        labels = rs["metadata"].get("labels") or {}
        found = []
        for d in self.deployments.list(rs["metadata"].get("namespace", "")):
            try:
                selector = LabelSelector.from_object(d["spec"].get("selector"))
            except errors.APIError:
                continue
            if not selector.is_empty() and selector.matches(labels):
                found.append(d)
        return found

    def _add_rs(self, rs: Object) -> None:
        ref = controller_of(rs)
        if ref is not None:
            d = self._owner(rs, ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_for_rs(rs):
            self.enqueue(d)

    def _update_rs(self, old: Object, cur: Object) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        if cur_ref != old_ref and old_ref is not None:
            d = self._owner(old, old_ref)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._owner(cur, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if old["metadata"].get("labels") != cur["metadata"].get("labels") or cur_ref != old_ref:
            for d in self._deployments_for_rs(cur):
                self.enqueue(d)

    def _delete_rs(self, rs: Object) -> None:
        d = self._owner(rs, controller_of(rs))
        if d is not None:
            self.enqueue(d)

    def _delete_pod(self, pod: Object) -> None:
        """A Recreate rollout waits for the old pods to be gone: wake it when one goes."""
        namespace = pod["metadata"].get("namespace", "")
        ref = controller_of(pod)
        rs = resolve_controller_ref(self.rses, namespace, ref, "ReplicaSet")
        if rs is None:
            return
        d = self._owner(rs, controller_of(rs))
        if d is not None and not util.is_rolling(d):
            self.enqueue(d)

    # -- writes shared by the sync steps ----------------------------------------------------------

    async def update_rs(self, rs: Object) -> Object:
        m = rs["metadata"]
        return await self.client.update(REPLICASETS, rs, m["namespace"])

    async def write_status(self, d: Object, status: Object) -> None:
        """Write the Deployment's status (and keep the local copy in step)."""
        m = d["metadata"]
        await self.client.patch(DEPLOYMENTS, m["name"], status_patch(status), m["namespace"],
                                subresource="status")
        d["status"] = status

    async def set_revision(self, d: Object, revision: str) -> None:
        """Mirror the new RS's revision on the Deployment (metadata only: no generation)."""
        annotations = d["metadata"].setdefault("annotations", {})
        if annotations.get(util.REVISION) == revision:
            return
        m = d["metadata"]
        await self.client.patch(DEPLOYMENTS, m["name"],
                                {"metadata": {"annotations": {util.REVISION: revision}}},
                                m["namespace"])
        annotations[util.REVISION] = revision

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        cached = self.deployments.get(namespace, name)
        if cached is None:
            return
        d = deep_copy(cached)
        try:
            selector = LabelSelector.from_object(d["spec"].get("selector"))
        except errors.APIError as exc:
            self.event(d, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return
        if selector.is_empty():
            self.event(d, WARNING, "SelectingAll",
                       "This deployment is selecting all pods. A non-empty selector is required.")
            if _observed(d) < int(d["metadata"].get("generation") or 0):
                status = dict(d.get("status") or {})
                status["observedGeneration"] = d["metadata"].get("generation")
                await self.write_status(d, status)
            return
        rses = await self._claim_rses(d, selector)
        try:
            await self._sync(d, rses, selector)
        except util.InvalidSpec as exc:
            self.event(d, WARNING, "InvalidSpec", str(exc))

    async def _sync(self, d: Object, rses: list[Object], selector: LabelSelector) -> None:
        if d["metadata"].get("deletionTimestamp"):
            new_rs, olds = await sync.new_and_old_rses(self, d, rses, create=False)
            await progress.sync_deployment_status(self, [*olds, new_rs], new_rs, d)
            return
        await self._check_paused_conditions(d)
        if d["spec"].get("paused"):
            await self._scale_only(d, rses)
            return
        if await sync.is_scaling_event(self, d, rses):
            await self._scale_only(d, rses)
            return
        if util.is_rolling(d):
            await rollout.rolling(self, d, rses)
        else:
            pods = [p for p in self.pods.list(d["metadata"]["namespace"])
                    if selector.matches(p["metadata"].get("labels") or {})]
            await rollout.recreate(self, d, rses, rollout.pods_by_rs(pods, rses))

    async def _scale_only(self, d: Object, rses: list[Object]) -> None:
        new_rs, olds = await sync.new_and_old_rses(self, d, rses, create=False)
        await sync.scale(self, d, new_rs, olds)
        if d["spec"].get("paused"):
            await sync.cleanup(self, olds, d)
        await progress.sync_deployment_status(self, [*olds, new_rs], new_rs, d)

    async def _claim_rses(self, d: Object, selector: LabelSelector) -> list[Object]:
        namespace = d["metadata"]["namespace"]
        return await claim(self.client, REPLICASETS, owner=d,
                           owner_ref=controller_ref(d, self.api_version, self.kind),
                           selector=selector, children=list(self.rses.list(namespace)),
                           can_adopt=recheck_owner(self.client, DEPLOYMENTS, d))

    async def _check_paused_conditions(self, d: Object) -> None:
        """Progressing=Unknown DeploymentPaused/Resumed, so a pause never reads as a stall."""
        if not progress.has_progress_deadline(d):
            return
        current = progress.get_condition(d.get("status") or {}, progress.PROGRESSING)
        if current is not None and current.get("reason") == progress.TIMED_OUT:
            return
        paused_now = current is not None and current.get("reason") == progress.PAUSED
        status = deep_copy(d.get("status") or {})
        if d["spec"].get("paused") and not paused_now:
            progress.set_condition(status, progress.new_condition(
                progress.PROGRESSING, "Unknown", progress.PAUSED, "Deployment is paused",
                self.clock()))
        elif not d["spec"].get("paused") and paused_now:
            progress.set_condition(status, progress.new_condition(
                progress.PROGRESSING, "Unknown", progress.RESUMED, "Deployment is resumed",
                self.clock()))
        else:
            return
        await self.write_status(d, status)


def _observed(d: Object) -> int:
    return int((d.get("status") or {}).get("observedGeneration") or 0)
