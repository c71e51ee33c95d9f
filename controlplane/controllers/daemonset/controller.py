"""The DaemonSet controller: handlers, `sync(key)` and its writes.

`sync` claims the DaemonSet's ControllerRevisions and pods (adopting orphans, releasing
strays), makes sure the current revision exists (`history.construct`), then, once earlier
creates and deletes have been seen: the manage step (`plan.manage`), then, if that changed
nothing, one rolling-update step (`plan.rolling_update`; OnDelete waits for users to delete
pods), then revision cleanup, and last the status. Finished pods are deleted with a per-node
back-off (1 s doubling to 15 min) so a node that keeps failing the pod is not a hot loop.
Handlers map DaemonSet, revision, pod and node events to DaemonSet keys; they never call the
API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controlplane.api import errors
from controlplane.api.meta import controller_of
from controlplane.api.selectors import LabelSelector
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import DAEMONSETS, NODES, PODS
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import (
    Controller,
    ControllerContext,
    controller_ref,
    resolve_controller_ref,
    split_key,
)
from controlplane.controllers.daemonset import history, plan, util
from controlplane.controllers.expectations import Expectations
from controlplane.controllers.refmanager import claim, recheck_owner
from controlplane.controllers.status import status_patch

log = logging.getLogger(__name__)
Object = dict[str, Any]
BURST_REPLICAS = 250  # creates or deletes per sync (the DaemonSet controller's burstReplicas)
BACKOFF_INITIAL, BACKOFF_MAX = 1.0, 900.0  # seconds, for deleting finished pods per node
_ALWAYS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
           "numberReady")  # DaemonSetStatus fields without omitempty


class DaemonExpectations(Expectations):
    """Expectations with creates and deletes in flight at once (SetExpectations)."""

    def expect(self, key: str, adds: int, pod_keys: list[str]) -> None:
        self.expect_deletions(key, pod_keys)
        self._records[key].adds = adds


def namespace_terminating(exc: Exception) -> bool:
    return isinstance(exc, errors.Forbidden) and "because it is being terminated" in str(exc)


class DaemonSetController(Controller):
    name = "daemonset"
    component = "daemonset-controller"
    kind = "DaemonSet"
    api_version = "apps/v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.daemonsets = ctx.informers.lister(DAEMONSETS)
        self.revisions = ctx.informers.lister(history.CONTROLLERREVISIONS)
        self.pods = ctx.informers.lister(PODS)
        self.nodes = ctx.informers.lister(NODES)
        self.expectations = DaemonExpectations()  # handlers and workers, one event loop
        self.burst_replicas = BURST_REPLICAS
        self._backoff: dict[str, tuple[float, float]] = {}  # ds/node -> (delay, not before)
        self.daemonsets.informer.add_handlers(on_add=self.enqueue, on_update=self._update_ds,
                                              on_delete=self._delete_ds)
        self.revisions.informer.add_handlers(
            on_add=self._owned_changed, on_update=lambda old, cur: self._owned_changed(cur, old),
            on_delete=self._owned_changed)
        self.pods.informer.add_handlers(on_add=self._add_pod, on_update=self._update_pod,
                                        on_delete=self._delete_pod)
        self.nodes.informer.add_handlers(on_add=self._node_changed,
                                         on_update=self._update_node,
                                         on_delete=self._node_changed)

    # -- handlers ---------------------------------------------------------------------------------

    def _update_ds(self, old: Object, cur: Object) -> None:
        if old["metadata"].get("uid") != cur["metadata"].get("uid"):
            self._delete_ds(old)
        self.enqueue(cur)

    def _delete_ds(self, ds: Object) -> None:
        key = _key(ds)
        self.expectations.delete(key)
        self.queue.add(key)

    def _owner(self, obj: Object) -> Object | None:
        return resolve_controller_ref(self.daemonsets, obj["metadata"].get("namespace", ""),
                                      controller_of(obj), self.kind)

    def _matching(self, obj: Object) -> list[Object]:
        labels = obj["metadata"].get("labels") or {}
        found = []
        for ds in self.daemonsets.list(obj["metadata"].get("namespace", "")):
            try:
                selector = LabelSelector.from_object((ds.get("spec") or {}).get("selector"))
            except errors.APIError:
                continue
            if not selector.is_empty() and selector.matches(labels):
                found.append(ds)
        return found

    def _owned_changed(self, obj: Object, old: Object | None = None) -> None:
        """A revision or pod changed: wake its owner (an orphan: every DaemonSet matching it)."""
        for before in [old] if old is not None and controller_of(old) != controller_of(
                obj) else []:
            owner = self._owner(before)
            if owner is not None:
                self.enqueue(owner)
        if controller_of(obj) is not None:
            owner = self._owner(obj)
            if owner is not None:
                self.enqueue(owner)
            return
        if obj["metadata"].get("deletionTimestamp"):
            return
        for ds in self._matching(obj):
            self.enqueue(ds)

    def _add_pod(self, pod: Object) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._delete_pod(pod)  # a restarted controller sees pods pending deletion as adds
            return
        ds = self._owner(pod)
        if ds is not None:
            self.expectations.creation_observed(_key(ds))
        self._owned_changed(pod)

    def _update_pod(self, old: Object, cur: Object) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        if cur["metadata"].get("deletionTimestamp"):
            self._delete_pod(cur)
        self._owned_changed(cur, old)
        ds = self._owner(cur)
        if ds is not None and not podutil.is_ready(old) and podutil.is_ready(cur):
            min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0:
                self.enqueue_after(ds, min_ready + 1)

    def _delete_pod(self, pod: Object) -> None:
        ds = self._owner(pod)
        if ds is None:
            return
        self.expectations.deletion_observed(_key(ds), podutil.pod_key(pod))
        self.enqueue(ds)

    def _node_changed(self, node: Object) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    def _update_node(self, old: Object, cur: Object) -> None:
        """Heartbeats change only status: only labels, taints and the spec matter here."""
        if (old["metadata"].get("labels") != cur["metadata"].get("labels")
                or old.get("spec") != cur.get("spec")):
            self._node_changed(cur)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        ds = self.daemonsets.get(namespace, name)
        if ds is None:
            self.expectations.delete(key)
            return
        try:
            selector = LabelSelector.from_object((ds.get("spec") or {}).get("selector"))
        except errors.APIError as exc:
            self.event(ds, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return
        if selector.is_empty():
            self.event(ds, WARNING, "SelectingAll", "This daemon set is selecting all pods. "
                       "A non-empty selector is required.")
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        owner_ref = controller_ref(ds, self.api_version, self.kind)
        revisions = await claim(
            self.client, history.CONTROLLERREVISIONS, owner=ds, owner_ref=owner_ref,
            selector=selector, children=list(self.revisions.list(namespace)),
            can_adopt=recheck_owner(self.client, DAEMONSETS, ds))
        current, olds = await history.construct(self, ds, revisions)
        hash_ = str((current["metadata"].get("labels") or {}).get(util.HASH_LABEL) or "")
        pods = await claim(self.client, PODS, owner=ds, owner_ref=owner_ref, selector=selector,
                           children=list(self.pods.list(namespace)),
                           can_adopt=recheck_owner(self.client, DAEMONSETS, ds))
        nodes = list(self.nodes.list())
        grouped = plan.node_pods(pods)
        if not self.expectations.satisfied(key):
            await self.update_status(ds, nodes, grouped, hash_, observed=False)
            return
        error: Exception | None = None
        try:
            await self._update(ds, key, nodes, grouped, hash_)
            await history.cleanup(self, ds, olds, pods)
        except (errors.APIError, util.InvalidSpec) as exc:
            error = exc
        self._report_unschedulable(ds, pods)
        await self.update_status(ds, nodes, grouped, hash_, observed=True)
        if isinstance(error, util.InvalidSpec):
            self.event(ds, WARNING, "InvalidSpec", str(error))
        elif error is not None:
            raise error

    async def _update(self, ds: Object, key: str, nodes: list[Object],
                      grouped: plan.NodePods, hash_: str) -> None:
        now = self.clock()
        step = plan.manage(ds, nodes, grouped, hash_, now)
        step.delete += self._finished_to_delete(ds, step.finished)
        if step.create or step.delete:
            await self.sync_nodes(ds, key, step.delete, step.create, hash_)
            return
        if util.is_rolling(ds):
            update = plan.rolling_update(ds, nodes, grouped, hash_, now)
            if update.create or update.delete:
                await self.sync_nodes(ds, key, update.delete, update.create, hash_)

    def _finished_to_delete(self, ds: Object, finished: list[tuple[str, Object]]) -> list[str]:
        """The finished pods whose node is out of back-off (an event names failed ones)."""
        out = []
        now = asyncio.get_running_loop().time()
        self._backoff = {k: v for k, v in self._backoff.items() if v[1] + BACKOFF_MAX > now}
        for node, pod in finished:
            backoff_key = f"{ds['metadata']['uid']}/{node}"
            delay, not_before = self._backoff.get(backoff_key, (0.0, 0.0))
            if now < not_before:
                self.enqueue_after(ds, not_before - now)
                continue
            delay = min(max(delay * 2, BACKOFF_INITIAL), BACKOFF_MAX)
            self._backoff[backoff_key] = (delay, now + delay)
            m = pod["metadata"]
            if (pod.get("status") or {}).get("phase") == "Failed":
                self.event(ds, WARNING, "FailedDaemonPod", f"Found failed daemon pod "
                           f"{m['namespace']}/{m['name']} on node {node}, will try to kill it")
            out.append(m["name"])
        return out

    def _report_unschedulable(self, ds: Object, pods: list[Object]) -> None:
        """FailedPlacement for a pod the scheduler could not bind to its node."""
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName"):
                continue
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                        and cond.get("reason") == "Unschedulable"):
                    self.event(ds, WARNING, "FailedPlacement",
                               f"failed to place pod on {util.target_node(pod)!r}: "
                               f"{cond.get('message') or 'Unschedulable'}")

    # -- writes -----------------------------------------------------------------------------------

    async def sync_nodes(self, ds: Object, key: str, delete: list[str], create: list[str],
                         hash_: str) -> None:
        """Create a pod on each node of `create`, delete the pods named in `delete`."""
        create, delete = create[: self.burst_replicas], delete[: self.burst_replicas]
        namespace = ds["metadata"]["namespace"]
        self.expectations.expect(key, len(create), [f"{namespace}/{n}" for n in delete])
        template = util.pod_template(ds, hash_)
        owner_ref = controller_ref(ds, self.api_version, self.kind)
        first_error: Exception | None = None
        pos, batch = 0, min(len(create), 1)
        while pos < len(create):
            chunk = create[pos:pos + batch]
            results = await asyncio.gather(
                *(self._create(ds, key, template, owner_ref, node) for node in chunk),
                return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            pos += len(chunk)
            if failures:
                if not isinstance(failures[0], Exception):
                    raise failures[0]
                first_error = failures[0]
                for _ in range(len(create) - pos):
                    self.expectations.creation_observed(key)  # skipped: never to be seen
                break
            batch = min(2 * batch, len(create) - pos)
        results = await asyncio.gather(*(self._delete(ds, key, name) for name in delete),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                first_error = first_error or result
        if first_error is not None:
            raise first_error

    async def _create(self, ds: Object, key: str, template: Object, owner_ref: Object,
                      node: str) -> None:
        pod = podutil.pod_from_template(template, ds["metadata"]["name"], owner_ref)
        util.pin_to_node(pod["spec"], node)
        try:
            created = await self.client.create(PODS, pod, ds["metadata"]["namespace"])
        except errors.APIError as exc:
            self.expectations.creation_observed(key)
            if namespace_terminating(exc):
                return
            self.event(ds, WARNING, "FailedCreate", f"Error creating: {exc}")
            raise
        self.event(ds, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete(self, ds: Object, key: str, name: str) -> None:
        namespace = ds["metadata"]["namespace"]
        try:
            await self.client.delete(PODS, name, namespace)
        except errors.APIError as exc:
            self.expectations.deletion_observed(key, f"{namespace}/{name}")
            if isinstance(exc, errors.NotFound):
                return
            self.event(ds, WARNING, "FailedDelete", f"Error deleting: {exc}")
            raise
        self.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

    async def update_status(self, ds: Object, nodes: list[Object], grouped: plan.NodePods,
                            hash_: str, *, observed: bool) -> None:
        """Write the counts (and observedGeneration, when this sync acted on the spec)."""
        old = ds.get("status") or {}
        new = plan.status(ds, nodes, grouped, hash_, self.clock())
        generation = int(ds["metadata"].get("generation") or 0)
        new["observedGeneration"] = generation if observed else old.get("observedGeneration")
        if old.get("collisionCount") is not None:
            new["collisionCount"] = old["collisionCount"]
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and new["numberReady"] != new["numberAvailable"]:
            self.enqueue_after(ds, min_ready)  # a last line of defence against clock skew
        unchanged = all(int(old.get(k) or 0) == int(v or 0) for k, v in new.items()
                        if k != "observedGeneration")
        if unchanged and (not observed or int(old.get("observedGeneration") or 0) >= generation):
            return
        m = ds["metadata"]
        await self.client.patch(DAEMONSETS, m["name"], status_patch(new, _ALWAYS),
                                m["namespace"], subresource="status")

def _key(ds: Object) -> str:
    return f"{ds['metadata'].get('namespace')}/{ds['metadata']['name']}"
