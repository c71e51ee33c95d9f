"""The scheduler cache: nodes and the pods bound or assumed on them, kept from informer events.

A pod is *assumed* on a node the moment the scheduler picks it, before the binding is written,
so the next cycle already sees its requests; the informer's event for the bound pod confirms
it, a failed binding forgets it. Pods bound to a node not seen yet wait in a NodeInfo without a
node object. Everything runs on the event loop: handlers and the synchronous scheduling cycle
never interleave, so a cycle reads the cache directly as its snapshot.
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.podindex import PodIndex
from controlplane.scheduler.podinfo import PodInfo

log = logging.getLogger(__name__)
Object = dict[str, Any]


def is_terminal(pod: Object) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}  # name -> NodeInfo (node may be None: pods only)
        self.pods: dict[str, str] = {}  # pod key -> node name, for bound and assumed pods
        self.assumed: set[str] = set()  # keys assumed but not yet seen bound by the informer
        self.index = PodIndex()  # the same pods, by label and affinity term
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.services: dict[str, dict[str, Object]] = {}  # namespace -> name -> Service
        self.replica_sets: dict[str, Object] = {}  # "ns/name" -> ReplicaSet
        self._snapshot: Snapshot | None = None  # memoised until a node or lister changes

    def __repr__(self) -> str:
        return (f"<Cache nodes={len(self.nodes)} pods={len(self.pods)} "
                f"assumed={len(self.assumed)}>")

    # -- nodes ----------------------------------------------------------------------------------

    def set_node(self, node: Object) -> NodeInfo:
        name = str(node["metadata"]["name"])
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        info.set_node(node)
        self._snapshot = None
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None  # keep the pods until they are deleted or rebound
        else:
            del self.nodes[name]
        self._snapshot = None

    # -- pods -----------------------------------------------------------------------------------

    def add_pod(self, pod: Object) -> None:
        """A bound pod seen by the informer (adds it, moves it, or confirms an assumption)."""
        info = PodInfo(pod)
        if not info.node_name or is_terminal(pod):
            self.remove_pod(info.key)
            return
        self.assumed.discard(info.key)
        self._place(info)

    def remove_pod(self, key: str) -> None:
        node = self.pods.pop(key, None)
        self.assumed.discard(key)
        if node is None:
            return
        self.index.remove(key)
        info = self.nodes.get(node)
        if info is None:
            return
        info.remove_pod(key)
        if info.node is None and not info.pods:
            del self.nodes[node]

    def assume(self, pod: PodInfo, node: str) -> None:
        """Count `pod` on `node` until its binding is confirmed or forgotten."""
        assumed = PodInfo({**pod.pod, "spec": {**pod.spec, "nodeName": node}})
        self._place(assumed)
        self.assumed.add(pod.key)

    def forget(self, key: str) -> None:
        """Drop an assumption whose binding failed (a confirmed pod stays)."""
        if key in self.assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def _place(self, info: PodInfo) -> None:
        old = self.pods.get(info.key)
        if old is not None and old != info.node_name:
            self.remove_pod(info.key)
        node = self.nodes.get(info.node_name)
        if node is None:
            node = self.nodes[info.node_name] = NodeInfo(info.node_name)
        node.add_pod(info)
        self.pods[info.key] = info.node_name
        self.index.add(info, info.node_name)

    # -- listers for plugins ------------------------------------------------------------------

    def set_namespace(self, namespace: Object) -> None:
        meta = namespace.get("metadata") or {}
        self.namespace_labels[str(meta.get("name"))] = dict(meta.get("labels") or {})
        self._snapshot = None

    def remove_namespace(self, name: str) -> None:
        self.namespace_labels.pop(name, None)
        self._snapshot = None

    def set_service(self, service: Object) -> None:
        meta = service.get("metadata") or {}
        self.services.setdefault(str(meta.get("namespace")), {})[str(meta.get("name"))] = service
        self._snapshot = None

    def remove_service(self, service: Object) -> None:
        meta = service.get("metadata") or {}
        self.services.get(str(meta.get("namespace")), {}).pop(str(meta.get("name")), None)
        self._snapshot = None

    def set_replica_set(self, replica_set: Object) -> None:
        meta = replica_set.get("metadata") or {}
        self.replica_sets[f"{meta.get('namespace')}/{meta.get('name')}"] = replica_set
        self._snapshot = None

    def remove_replica_set(self, replica_set: Object) -> None:
        meta = replica_set.get("metadata") or {}
        self.replica_sets.pop(f"{meta.get('namespace')}/{meta.get('name')}", None)
        self._snapshot = None

    def snapshot(self) -> Snapshot:
        """The cluster as the next cycle sees it (shares NodeInfos: read, never keep).

        Pod changes update the shared NodeInfos in place; anything else rebuilds the snapshot.
        """
        if self._snapshot is None:
            nodes = sorted((n for n in self.nodes.values() if n.node is not None),
                           key=lambda n: n.name)
            self._snapshot = Snapshot(
                nodes, self.namespace_labels,
                {ns: list(s.values()) for ns, s in self.services.items()}, self.replica_sets,
                self.index)
        return self._snapshot
