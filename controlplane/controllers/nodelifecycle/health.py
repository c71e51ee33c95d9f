"""Node health as the node lifecycle controller sees it: probes, Unknown conditions, zone states.

A node's probe time is when *we* last saw its Ready heartbeat (lastHeartbeatTime) or its Lease
(renewTime) move, on our own clock, as Kubernetes does, so clock skew between machines never
makes a node look dead; a node that never posted a Ready condition is timed from its creation
with the startup grace period. Past the grace period its Ready, MemoryPressure, DiskPressure
and PIDPressure conditions become Unknown. Zones (region and zone labels) are Normal,
PartialDisruption (more than 2 and at least 55% of their nodes not ready) or FullDisruption
(none ready). All pure; the controller does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from controlplane.api.meta import parse_time

Object = dict[str, Any]
READY = "Ready"
CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
NORMAL, PARTIAL, FULL = "Normal", "PartialDisruption", "FullDisruption"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"


@dataclass(frozen=True)
class Probe:
    """The heartbeats last seen for one node and when we saw them change."""

    heartbeat: str | None  # Ready's lastHeartbeatTime (None: no Ready condition)
    renew: str  # the Lease's renewTime ("" without a lease)
    at: datetime  # our clock when either last moved


def condition(node: Object, type_: str) -> Object | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def ready_status(node: Object) -> str:
    """"True", "False", "Unknown"; "" when the node never posted a Ready condition."""
    cond = condition(node, READY)
    return str(cond.get("status") or "Unknown") if cond is not None else ""


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(node: Object, default: datetime) -> datetime:
    try:
        return parse_time(str(node["metadata"]["creationTimestamp"]))
    except (KeyError, ValueError):
        return default


def observe(prev: Probe | None, node: Object, lease: Object | None, now: datetime) -> Probe:
    """The probe after seeing `node` and its `lease` at `now`."""
    ready = condition(node, READY)
    heartbeat = str(ready.get("lastHeartbeatTime") or "") if ready is not None else None
    renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
    if prev is None:
        at = now if ready is not None or renew else _created(node, now)
    elif heartbeat != prev.heartbeat and heartbeat is not None:
        at = now
    elif renew and renew != prev.renew:
        at = now
    else:
        at = prev.at
    return Probe(heartbeat, renew, at)


def expiry(probe: Probe, node: Object, grace: float, startup_grace: float) -> datetime:
    """When the node counts as silent: the probe plus the (startup) grace period."""
    seconds = grace if condition(node, READY) is not None else startup_grace
    return probe.at + timedelta(seconds=seconds)


def unknown_conditions(node: Object, now: datetime) -> list[Object] | None:
    """The node's conditions with the heartbeat ones Unknown (None when nothing changes)."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    changed = False
    for type_ in CONDITIONS:
        cond = next((c for c in conditions if c.get("type") == type_), None)
        if cond is None:
            created = node["metadata"].get("creationTimestamp") or rfc3339(now)
            conditions.append({"type": type_, "status": "Unknown",
                               "lastHeartbeatTime": created, "lastTransitionTime": rfc3339(now),
                               "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status."})
            changed = True
        elif cond.get("status") != "Unknown":
            cond.update(status="Unknown", reason="NodeStatusUnknown",
                        message="Kubelet stopped posting node status.",
                        lastTransitionTime=rfc3339(now))
            changed = True
    return conditions if changed else None


def zone_of(node: Object) -> str:
    labels = node["metadata"].get("labels") or {}
    return f"{labels.get(REGION, '')}:{labels.get(ZONE, '')}"


def zone_state(ready: int, not_ready: int, unhealthy_threshold: float) -> str:
    """Kubernetes' ComputeZoneState."""
    if ready == 0 and not_ready > 0:
        return FULL
    if not_ready > 2 and not_ready / (ready + not_ready) >= unhealthy_threshold:
        return PARTIAL
    return NORMAL


def zone_states(nodes: Iterable[Object], unhealthy_threshold: float
                ) -> tuple[dict[str, str], dict[str, int]]:
    """Each zone's state and size (nodes labelled exclude-disruption do not count)."""
    counts: dict[str, list[int]] = {}
    for node in nodes:
        if EXCLUDE_DISRUPTION in (node["metadata"].get("labels") or {}):
            continue
        count = counts.setdefault(zone_of(node), [0, 0])
        count[0 if ready_status(node) == "True" else 1] += 1
    states = {zone: zone_state(r, n, unhealthy_threshold) for zone, (r, n) in counts.items()}
    return states, {zone: r + n for zone, (r, n) in counts.items()}
