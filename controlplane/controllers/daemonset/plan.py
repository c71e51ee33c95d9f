"""What a DaemonSet sync should do, as pure functions of the caches (daemon_controller.go's
manage, update.go's rollingUpdate, and the status count).

Pods are grouped by the node they are for (`NodePods`: a node name -> its daemon pods, left out
are pods that are both finished and being deleted). `manage` puts one pod on every node that
should run one and removes pods from nodes that should not (and extra ones, keeping the oldest;
with maxSurge, an old pod waits until its new replacement is available). Finished pods are
returned apart, since deleting them is rate limited per node by the controller. `rolling_update`
then deletes old pods within maxUnavailable (the manage step recreates them from the current
revision), or, with maxSurge, creates new pods beside old ones. `status` counts what kubectl
shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controlplane.controllers import pods as podutil
from controlplane.controllers.daemonset import util

Object = dict[str, Any]
NodePods = dict[str, list[Object]]


@dataclass
class Plan:
    """Nodes to create a pod on and pod names to delete; finished pods the controller may
    delete once its per-node back-off allows (node name, pod)."""

    create: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    finished: list[tuple[str, Object]] = field(default_factory=list)


def node_pods(pods: Iterable[Object], include_deleted_terminal: bool = False) -> NodePods:
    """Group claimed daemon pods by target node (pods with none are skipped)."""
    grouped: NodePods = {}
    for pod in pods:
        if (not include_deleted_terminal and util.is_terminal(pod)
                and pod["metadata"].get("deletionTimestamp")):
            continue
        node = util.target_node(pod)
        if node is not None:
            grouped.setdefault(node, []).append(pod)
    return grouped


def manage(ds: Object, nodes: list[Object], grouped: NodePods, hash_: str,
           now: datetime) -> Plan:
    """Creates and deletes that make every eligible node run exactly one daemon pod."""
    plan = Plan()
    for node in nodes:
        _on_node(plan, node, ds, grouped, hash_, now)
    running = {n["metadata"]["name"] for n in nodes}
    for name, pods in grouped.items():  # pinned to a node that is gone: never scheduled
        if name not in running:
            plan.delete += [p["metadata"]["name"] for p in pods
                            if not (p.get("spec") or {}).get("nodeName")]
    return plan


def _on_node(plan: Plan, node: Object, ds: Object, grouped: NodePods, hash_: str,
             now: datetime) -> None:
    name = node["metadata"]["name"]
    run, keep = util.should_run(node, ds)
    pods = grouped.get(name)
    if run and pods is None:
        plan.create.append(name)
        return
    if pods is None:
        return
    if not keep:
        plan.delete += [p["metadata"]["name"] for p in pods
                        if not p["metadata"].get("deletionTimestamp")]
        return
    live: list[Object] = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if util.is_terminal(pod):
            plan.finished.append((name, pod))
        else:
            live.append(pod)
    live = util.by_age(live)
    if not util.allows_surge(ds):
        plan.delete += [p["metadata"]["name"] for p in live[1:]]
        return
    if len(live) <= 1:
        if not live and run:
            plan.create.append(name)
        return
    _prune_surged(plan, ds, live, hash_, now)


def _prune_surged(plan: Plan, ds: Object, live: list[Object], hash_: str,
                  now: datetime) -> None:
    """Keep the oldest new and the oldest old pod while the new one is not yet available."""
    generation = util.template_generation(ds)
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    oldest_new: Object | None = None
    oldest_old: Object | None = None
    for pod in live:
        if util.is_updated(pod, hash_, generation):
            if oldest_new is None:
                oldest_new = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        plan.delete.append(pod["metadata"]["name"])
    if oldest_new is not None and oldest_old is not None and (
            not podutil.is_ready(oldest_old)
            or podutil.is_available(oldest_new, min_ready, now)):
        plan.delete.append(oldest_old["metadata"]["name"])


def _new_and_old(pods: list[Object], hash_: str, generation: int | None
                 ) -> tuple[Object | None, Object | None, bool]:
    """(the new pod, the old pod, at most one of each) among a node's live pods."""
    new: Object | None = None
    old: Object | None = None
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        if util.is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update(ds: Object, nodes: list[Object], grouped: NodePods, hash_: str,
                   now: datetime) -> Plan:
    """One step of a RollingUpdate: old pods to delete (and, surging, nodes to create on)."""
    by_name = {n["metadata"]["name"]: n for n in nodes}
    desired = 0
    grouped = dict(grouped)
    for node in nodes:
        if util.should_run(node, ds)[0]:
            desired += 1
            grouped.setdefault(node["metadata"]["name"], [])
    surge, max_unavailable = util.surge_and_unavailable(ds, desired)
    generation = util.template_generation(ds)
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    if surge == 0:
        return _replace(grouped, hash_, generation, min_ready, max_unavailable, now)
    return _surge(ds, by_name, grouped, hash_, generation, min_ready, surge, desired, now)


def _replace(grouped: NodePods, hash_: str, generation: int | None, min_ready: int,
             max_unavailable: int, now: datetime) -> Plan:
    unavailable = 0
    replace_now: list[str] = []  # old and not available: costs nothing to replace
    candidates: list[str] = []
    for name in sorted(grouped):
        new, old, ok = _new_and_old(grouped[name], hash_, generation)
        if not ok or (new is None) == (old is None):
            unavailable += 1  # the manage step creates or prunes here
        elif new is not None:
            if not podutil.is_available(new, min_ready, now):
                unavailable += 1
        elif old is not None:
            if not podutil.is_available(old, min_ready, now):
                replace_now.append(old["metadata"]["name"])
                unavailable += 1
            elif unavailable < max_unavailable:
                candidates.append(old["metadata"]["name"])
    room = min(max(max_unavailable - unavailable, 0), len(candidates))
    return Plan(delete=replace_now + candidates[:room])


def _surge(ds: Object, nodes: dict[str, Object], grouped: NodePods, hash_: str,
           generation: int | None, min_ready: int, max_surge: int, desired: int,
           now: datetime) -> Plan:
    plan = Plan()
    not_wanted: list[Object] = []  # old available pods on nodes that no longer fit
    candidates: list[str] = []
    allowed: list[str] = []
    surging = available = 0
    for name in sorted(grouped):
        new, old, ok = _new_and_old(grouped[name], hash_, generation)
        if not ok:
            surging += 1
            continue
        current = old if old is not None else new
        if current is not None and podutil.is_available(current, min_ready, now):
            available += 1
        if old is None:
            continue
        node = nodes.get(name)
        fits = node is not None and util.should_run(node, ds)[0]
        if new is None:
            if not podutil.is_available(old, min_ready, now):
                (allowed.append(name) if fits else plan.delete.append(old["metadata"]["name"]))
            elif not fits:
                not_wanted.append(old)
            elif surging < max_surge:
                candidates.append(name)
        elif not podutil.is_available(new, min_ready, now):
            surging += 1
        else:
            plan.delete.append(old["metadata"]["name"])
    deletable = min(max(available - desired, 0), len(not_wanted))
    plan.delete += [p["metadata"]["name"] for p in not_wanted[:deletable] if podutil.is_ready(p)]
    room = min(max(max_surge - surging, 0), len(candidates))
    plan.create = allowed + candidates[:room]
    return plan


def status(ds: Object, nodes: list[Object], grouped: NodePods, hash_: str,
           now: datetime) -> Object:
    """The counts of DaemonSetStatus (observedGeneration and collisionCount excepted)."""
    desired = current = misscheduled = ready = updated = available = 0
    generation = util.template_generation(ds)
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    for node in nodes:
        pods = grouped.get(node["metadata"]["name"]) or []
        if not util.should_run(node, ds)[0]:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = util.by_age(pods)[0]
        if podutil.is_ready(pod):
            ready += 1
            if podutil.is_available(pod, min_ready, now):
                available += 1
        if util.is_updated(pod, hash_, generation):
            updated += 1
    return {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled, "numberReady": ready,
            "updatedNumberScheduled": updated, "numberAvailable": available,
            "numberUnavailable": desired - available}
