"""The in-tree plugins, by the names KubeSchedulerConfiguration uses for them."""

from __future__ import annotations

from controlplane.scheduler.plugin import FilterPlugin, ScorePlugin
from controlplane.scheduler.plugins.image_locality import ImageLocality
from controlplane.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from controlplane.scheduler.plugins.node_affinity import NodeAffinity
from controlplane.scheduler.plugins.node_basics import NodeName, NodeReady, NodeUnschedulable
from controlplane.scheduler.plugins.node_ports import NodePorts
from controlplane.scheduler.plugins.resources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
    NodeResourcesLeastAllocated,
)
from controlplane.scheduler.plugins.taint_toleration import TaintToleration
from controlplane.scheduler.plugins.topology_spread import PodTopologySpread

REGISTRY: dict[str, type[FilterPlugin] | type[ScorePlugin]] = {
    cls.name: cls for cls in (
        NodeUnschedulable, NodeName, TaintToleration, NodeReady, NodeAffinity, NodePorts,
        NodeResourcesFit, PodTopologySpread, InterPodAffinity, NodeResourcesBalancedAllocation,
        ImageLocality, NodeResourcesLeastAllocated)
}
# Built into the scheduler rather than pluggable here: the queue's sort, preemption, binding.
BUILT_IN = ("PrioritySort", "DefaultPreemption", "DefaultBinder")
