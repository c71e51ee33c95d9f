"""Builders for nodes, pods and snapshots, and a fake of the scheduler's API writes.

Shipped beside the code they fake (STYLE: a fake next to every side-effect interface) so unit
tests, benchmarks and other components' tests build the same objects the apiserver would hold.
"""

from __future__ import annotations

from typing import Any

from controlplane.api import errors
from controlplane.client.rest import EVENTS, Resource
from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.podinfo import PodInfo

Object = dict[str, Any]


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
              ephemeral: str | None = None, labels: dict[str, str] | None = None,
              taints: list[Object] | None = None, ready: str | None = "True",
              unschedulable: bool = False, images: list[Object] | None = None,
              extra: dict[str, str] | None = None) -> Object:
    """A Node as an agent would register it: hostname label, allocatable, Ready condition."""
    allocatable: Object = {"cpu": cpu, "memory": memory, "pods": str(pods), **(extra or {})}
    if ephemeral is not None:
        allocatable["ephemeral-storage"] = ephemeral
    node: Object = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {},
        "status": {"capacity": dict(allocatable), "allocatable": allocatable,
                   "conditions": [] if ready is None else [
                       {"type": "Ready", "status": ready, "reason": "KubeletReady"}]},
    }
    if taints:
        node["spec"]["taints"] = taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    if images:
        node["status"]["images"] = images
    return node


def make_pod(name: str, namespace: str = "default", *, cpu: str | None = None,
             memory: str | None = None, labels: dict[str, str] | None = None,
             node_name: str | None = None, scheduler_name: str | None = None,
             uid: str | None = None, **spec: Any) -> Object:
    """A Pod with one container (requests from `cpu`/`memory`); extra kwargs go to spec."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: Object = {"name": "c", "image": "busybox", "resources": {}}
    if requests:
        container["resources"]["requests"] = requests
    pod_spec: Object = {"containers": [container], "schedulerName": scheduler_name
                        or "default-scheduler", **spec}
    if node_name:
        pod_spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}",
                         "labels": dict(labels or {}), "resourceVersion": "1"},
            "spec": pod_spec, "status": {"phase": "Pending"}}


def node_info(node: Object, *pods: Object) -> NodeInfo:
    info = NodeInfo(str(node["metadata"]["name"]), node)
    for pod in pods:
        info.add_pod(PodInfo(pod))
    return info


def snapshot(*nodes: NodeInfo, namespaces: dict[str, dict[str, str]] | None = None,
             services: list[Object] | None = None,
             replica_sets: list[Object] | None = None) -> Snapshot:
    by_namespace: dict[str, list[Object]] = {}
    for service in services or []:
        by_namespace.setdefault(service["metadata"]["namespace"], []).append(service)
    return Snapshot(list(nodes), dict(namespaces or {}), by_namespace,
                    {f"{r['metadata']['namespace']}/{r['metadata']['name']}": r
                     for r in replica_sets or []})


class FakeAPI:
    """Records the scheduler's writes; `fail_bind` maps pod keys to the error binding raises.

    Also the EventClient of an `EventSink` (creates and patches of events only).
    """

    def __init__(self) -> None:
        self.bindings: list[tuple[str, str]] = []  # (ns/name, node)
        self.status_patches: list[tuple[str, Object]] = []
        self.events: list[Object] = []
        self.fail_bind: dict[str, Exception] = {}

    async def bind(self, namespace: str, name: str, node: str) -> None:
        key = f"{namespace}/{name}"
        if key in self.fail_bind:
            raise self.fail_bind[key]
        self.bindings.append((key, node))

    async def patch_pod_status(self, namespace: str, name: str, patch: Object) -> None:
        self.status_patches.append((f"{namespace}/{name}", patch))

    async def create(self, res: Resource, obj: Object, namespace: str = "", *,
                     subresource: str = "", name: str = "") -> Object:
        assert res == EVENTS, f"FakeAPI creates events only, not {res}"
        self.events.append(obj)
        return obj

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object:
        assert res == EVENTS, f"FakeAPI patches events only, not {res}"
        for event in self.events:
            if event["metadata"]["name"] == name:
                event.update(patch)
                return event
        raise errors.NotFound(f'events "{name}" not found')
