"""The node lifecycle controller: silent nodes become Unknown, get tainted, lose their pods.

`sync(node)` runs Kubernetes' monitorNodeHealth for one node, then its taint manager:
1. probe: a node whose Ready heartbeat and Lease have not moved for --node-monitor-grace-period
   (--node-startup-grace-period if it never posted Ready) gets its conditions set Unknown
   ("Kubelet stopped posting node status.") through nodes/status; otherwise the node is looked
   at again when that period would run out;
2. taints: NoSchedule ones mirror the conditions; the NoExecute one (unreachable / not-ready)
   follows Ready unless zone disruption says hold or clear (`health.zone_states`);
3. pods: on an Unknown node their Ready condition is set False; under NoExecute taints a pod is
   deleted (DisruptionTarget condition first) once its toleration runs out, and the node is
   looked at again at the next deadline.
Writes use the cached resourceVersion (a conflict retries the sync with backoff).
"""

from __future__ import annotations

import argparse
import logging
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.api.flags import duration
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.rest import LEASES, NODES, PODS
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import Controller, ControllerContext, deep_copy
from controlplane.controllers.nodelifecycle import health
from controlplane.controllers.nodelifecycle.taints import (
    IMMEDIATELY,
    NO_EXECUTE,
    Mode,
    desired_taints,
    eviction_time,
    taint_start,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
DEFAULTS = {"node_monitor_grace_period": 40.0, "node_startup_grace_period": 60.0,
            "large_cluster_size_threshold": 50, "unhealthy_zone_threshold": 0.55}


def add_flags(parser: argparse.ArgumentParser) -> None:

    parser.add_argument("--node-monitor-grace-period", type=duration, default=40.0,
                        help="how long a node may be silent before it is marked Unknown")
    parser.add_argument("--node-startup-grace-period", type=duration, default=60.0,
                        help="the same for a node that never posted its status")
    parser.add_argument("--pod-eviction-timeout", type=duration, default=300.0,
                        help="accepted for compatibility; eviction follows the pods' "
                             "tolerationSeconds (300s by default, from admission)")
    parser.add_argument("--large-cluster-size-threshold", type=int, default=50, metavar="N",
                        help="zones up to this size stop tainting when partially disrupted")
    parser.add_argument("--unhealthy-zone-threshold", type=float, default=0.55,
                        metavar="FRACTION", help="not-ready share making a zone disrupted")


def _with_kind(obj: Object, kind: str) -> Object:
    return obj if obj.get("kind") else dict(obj, kind=kind, apiVersion="v1")


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    component = "node-controller"
    kind = "Node"
    api_version = "v1"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        option = ctx.option_values(DEFAULTS)
        self.grace = float(option["node_monitor_grace_period"])
        self.startup_grace = float(option["node_startup_grace_period"])
        self.large_cluster = int(option["large_cluster_size_threshold"])
        self.unhealthy_threshold = float(option["unhealthy_zone_threshold"])
        self.nodes = ctx.informers.lister(NODES)
        self.leases = ctx.informers.lister(LEASES)
        self.pods = ctx.informers.lister(PODS)
        # All owned by the controller's loop (handlers and workers):
        self.probes: dict[str, health.Probe] = {}  # node -> heartbeats last seen
        self.first_seen: dict[tuple[str, str], datetime] = {}  # (node, taint) w/o timeAdded
        self.zones: dict[str, str] = {}  # zone -> state at the last sync
        self.nodes.informer.add_handlers(on_add=self.enqueue,
                                         on_update=lambda _old, cur: self.enqueue(cur),
                                         on_delete=self.enqueue)
        self.leases.informer.add_handlers(on_add=self._lease_seen,
                                          on_update=lambda _old, cur: self._lease_seen(cur))
        self.pods.informer.add_handlers(on_add=self._pod_seen,
                                        on_update=lambda _old, cur: self._pod_seen(cur))

    def _lease_seen(self, lease: Object) -> None:
        m = lease["metadata"]
        if m.get("namespace") != LEASE_NAMESPACE:
            return
        node = self.nodes.get("", m["name"])
        if node is not None:
            self.probes[m["name"]] = health.observe(self.probes.get(m["name"]), node, lease,
                                                    self.clock())

    def _pod_seen(self, pod: Object) -> None:
        name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.get("", name) if name else None
        if node is None:
            return
        taints = (node.get("spec") or {}).get("taints") or []
        tainted = any(t.get("effect") == NO_EXECUTE for t in taints)
        if tainted or health.ready_status(node) == "Unknown":
            self.queue.add(str(name))

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.nodes.get("", key)
        if node is None:
            self.probes.pop(key, None)
            for seen in [s for s in self.first_seen if s[0] == key]:
                del self.first_seen[seen]
            return
        now = self.clock()
        probe = health.observe(self.probes.get(key), node,
                               self.leases.get(LEASE_NAMESPACE, key), now)
        self.probes[key] = probe
        expires = health.expiry(probe, node, self.grace, self.startup_grace)
        if now > expires:
            node = await self._mark_unknown(node, now)
        else:
            self.queue.add_after(key, (expires - now).total_seconds() + 0.01)
        ready = health.ready_status(node)
        node = await self._sync_taints(node, ready, now)
        if ready == "Unknown":
            await self._mark_pods_not_ready(node, now)
        await self._evict(node, now)

    async def _mark_unknown(self, node: Object, now: datetime) -> Object:
        conditions = health.unknown_conditions(node, now)
        if conditions is None:
            return node
        name = node["metadata"]["name"]
        was = health.ready_status(node)
        updated = deep_copy(node)
        updated.setdefault("status", {})["conditions"] = conditions
        written = await self.client.update(NODES, updated, subresource="status")
        log.info("node %s: no heartbeat for %.0fs; conditions set Unknown", name, self.grace)
        if was == "True":
            self.event(node, NORMAL, "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        return written

    def _mode(self, node: Object) -> Mode:
        """Whether zone disruption lets this node's NoExecute taint follow its Ready status."""
        name = node["metadata"]["name"]
        others = [n for n in self.nodes.list() if n["metadata"]["name"] != name]
        states, sizes = health.zone_states([*others, node], self.unhealthy_threshold)
        if states != self.zones:
            if self.zones:
                log.info("zone states now %s", states)
                for other in others:
                    self.enqueue(other)
            self.zones = states
        if states and all(s == health.FULL for s in states.values()):
            return Mode.CLEAR  # every node is unreachable: more likely us than them
        zone = health.zone_of(node)
        if states.get(zone) == health.PARTIAL and sizes.get(zone, 0) <= self.large_cluster:
            return Mode.HOLD
        return Mode.APPLY

    async def _sync_taints(self, node: Object, ready: str, now: datetime) -> Object:
        taints = desired_taints(node, ready, self._mode(node), health.rfc3339(now))
        if taints == ((node.get("spec") or {}).get("taints") or []):
            return node
        updated = deep_copy(node)
        updated.setdefault("spec", {})["taints"] = taints
        if not taints:
            del updated["spec"]["taints"]
        written = await self.client.update(NODES, updated)
        log.info("node %s: taints now %s", node["metadata"]["name"],
                 ", ".join(f"{t['key']}:{t['effect']}" for t in taints) or "none")
        return written

    def _pods_on(self, node: Object) -> list[Object]:
        name = node["metadata"]["name"]
        return [p for p in self.pods.list() if (p.get("spec") or {}).get("nodeName") == name]

    async def _mark_pods_not_ready(self, node: Object, now: datetime) -> None:
        for pod in self._pods_on(node):
            cond = podutil.ready_condition(pod)
            if cond is None or cond.get("status") == "False":
                continue
            updated = deep_copy(pod)
            for c in updated["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c.update(status="False", lastTransitionTime=health.rfc3339(now))
            m = pod["metadata"]
            try:
                await self.client.update(PODS, updated, m["namespace"], subresource="status")
            except errors.NotFound:
                continue
            log.info("pod %s/%s: Ready set False (node %s unreachable)", m["namespace"],
                     m["name"], node["metadata"]["name"])
            self.recorder.event(_with_kind(pod, "Pod"), WARNING, "NodeNotReady",
                                "Node is not ready")

    async def _evict(self, node: Object, now: datetime) -> None:
        name = node["metadata"]["name"]
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if t.get("effect") == NO_EXECUTE]
        for seen in [s for s in self.first_seen
                     if s[0] == name and s[1] not in {t.get("key") for t in taints}]:
            del self.first_seen[seen]
        if not taints:
            return

        def started(taint: Object) -> datetime:
            return taint_start(taint, lambda t: self.first_seen.setdefault(
                (name, str(t.get("key"))), now))

        for pod in self._pods_on(node):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            when = eviction_time(pod, taints, started)
            if when is None:
                continue
            if when > now:
                self.queue.add_after(name, (when - now).total_seconds() + 0.01)
                continue
            await self._delete_pod(pod, now, when is IMMEDIATELY)

    async def _delete_pod(self, pod: Object, now: datetime, untolerated: bool) -> None:
        m = pod["metadata"]
        ref = f"{m['namespace']}/{m['name']}"
        self.recorder.event(_with_kind(pod, "Pod"), NORMAL, "TaintManagerEviction",
                            f"Marking for deletion Pod {ref}")
        condition = {"type": "DisruptionTarget", "status": "True",
                     "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint",
                     "lastTransitionTime": health.rfc3339(now)}
        try:
            await self.client.patch(PODS, m["name"], {"status": {"conditions": [condition]}},
                                    m["namespace"], subresource="status",
                                    patch_type="application/strategic-merge-patch+json")
            await self.client.delete(PODS, m["name"], m["namespace"])
        except errors.NotFound:
            return
        log.info("pod %s evicted from node %s (%s)", ref, pod["spec"].get("nodeName"),
                 "taint not tolerated" if untolerated else "toleration expired")
