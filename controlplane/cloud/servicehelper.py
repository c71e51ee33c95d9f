"""Pure rules of the service (load balancer) controller, as Kubernetes' servicehelper has them.

Which Services want a load balancer from us (type LoadBalancer without a loadBalancerClass: a
class names another implementation, so those are skipped), which need cleanup (they carry our
finalizer but are being deleted or no longer want one), which updates matter, and which nodes a
load balancer points at (all but those labelled `node.kubernetes.io/exclude-from-external-load-
balancers`, being deleted or tainted ToBeDeletedByClusterAutoscaler).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Object = dict[str, Any]
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"


def spec(service: Object) -> Object:
    return service.get("spec") or {}


def is_load_balancer(service: Object) -> bool:
    return spec(service).get("type") == "LoadBalancer"


def has_class(service: Object) -> bool:
    return spec(service).get("loadBalancerClass") is not None


def wants_load_balancer(service: Object) -> bool:
    """Type LoadBalancer and no loadBalancerClass (ours to provide)."""
    return is_load_balancer(service) and not has_class(service)


def has_finalizer(service: Object) -> bool:
    return FINALIZER in (service["metadata"].get("finalizers") or [])


def needs_cleanup(service: Object) -> bool:
    """Our finalizer is on a Service being deleted or no longer of type LoadBalancer."""
    if not has_finalizer(service):
        return False
    return bool(service["metadata"].get("deletionTimestamp")) or not is_load_balancer(service)


def concerns_us(service: Object) -> bool:
    """Whether the controller looks at this Service at all."""
    return wants_load_balancer(service) or has_finalizer(service)


def needs_update(old: Object, cur: Object) -> bool:
    """Whether an update may change the load balancer (status-only writes do not)."""
    if wants_load_balancer(old) != wants_load_balancer(cur) or needs_cleanup(cur):
        return True
    om, cm = old["metadata"], cur["metadata"]
    return (spec(old) != spec(cur) or om.get("uid") != cm.get("uid")
            or om.get("annotations") != cm.get("annotations")
            or om.get("finalizers") != cm.get("finalizers"))


def lb_status(service: Object) -> Object:
    return (service.get("status") or {}).get("loadBalancer") or {}


def status_equal(a: Object, b: Object) -> bool:
    """Whether two LoadBalancerStatus have the same ingress entries."""
    return (a.get("ingress") or []) == (b.get("ingress") or [])


def with_finalizer(service: Object, present: bool) -> list[str] | None:
    """The finalizers with ours added or removed (None: nothing to change)."""
    finalizers = list(service["metadata"].get("finalizers") or [])
    if (FINALIZER in finalizers) == present:
        return None
    return [*finalizers, FINALIZER] if present else [f for f in finalizers if f != FINALIZER]


def eligible_nodes(nodes: Iterable[Object]) -> list[Object]:
    """The nodes load balancers send traffic to, by name."""
    chosen = []
    for node in nodes:
        m = node["metadata"]
        if EXCLUDE_LABEL in (m.get("labels") or {}) or m.get("deletionTimestamp"):
            continue
        taints = (node.get("spec") or {}).get("taints") or []
        if any(t.get("key") == TO_BE_DELETED_TAINT for t in taints):
            continue
        chosen.append(node)
    return sorted(chosen, key=lambda n: str(n["metadata"]["name"]))


def node_names(nodes: Iterable[Object]) -> list[str]:
    return [str(n["metadata"]["name"]) for n in nodes]
