"""NodePorts: a pod wanting a hostPort does not fit where that (hostIP, protocol, port) is taken.

0.0.0.0 (or no hostIP) conflicts with every address on the node; a specific address conflicts
with itself and 0.0.0.0. Protocols are separate spaces (TCP 80 and UDP 80 coexist).
"""

from __future__ import annotations

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    NODE_ADD,
    POD_DELETE,
    SKIP,
    CycleState,
    FilterPlugin,
    Status,
)
from controlplane.scheduler.podinfo import PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts(FilterPlugin):
    name = "NodePorts"
    events = frozenset({NODE_ADD, POD_DELETE})

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   snapshot: Snapshot) -> tuple[Status | None, set[str] | None]:
        return (None if pod.host_ports else SKIP), None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for ip, protocol, port in pod.host_ports:
            if node.used_ports.conflicts(ip, protocol, port):
                return Status.unschedulable(REASON)
        return None
