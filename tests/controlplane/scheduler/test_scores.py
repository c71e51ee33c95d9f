"""Score plugins with Kubernetes' arithmetic, normalised to 0-100."""

from __future__ import annotations

from controlplane.scheduler.nodeinfo import Snapshot
from controlplane.scheduler.plugin import SKIP, CycleState, ScorePlugin, default_normalize
from controlplane.scheduler.plugins.image_locality import ImageLocality
from controlplane.scheduler.plugins.node_affinity import NodeAffinity
from controlplane.scheduler.plugins.resources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
    NodeResourcesLeastAllocated,
)
from controlplane.scheduler.plugins.taint_toleration import TaintToleration
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.testing import make_node, make_pod, node_info, snapshot

MB = 1024 * 1024


def scores(plugin: ScorePlugin, pod: dict, snap: Snapshot) -> list[int] | None:
    state, info = CycleState(), PodInfo(pod)
    if plugin.pre_score(state, info, snap, snap.nodes) == SKIP:
        return None
    raw = [plugin.score(state, info, n) for n in snap.nodes]
    assert plugin.score_nodes(state, info, snap.nodes) == raw  # the batch agrees
    return plugin.normalize(state, info, raw)


def test_default_normalize() -> None:
    assert default_normalize([2, 10, 0]) == [20, 100, 0]
    assert default_normalize([0, 1, 2], reverse=True) == [100, 50, 0]
    assert default_normalize([0, 0]) == [0, 0]
    assert default_normalize([0, 0], reverse=True) == [100, 100]


def test_least_allocated() -> None:
    busy = node_info(make_node("busy"), make_pod("a", cpu="1", memory="2Gi", node_name="busy"))
    empty = node_info(make_node("empty"))
    pod = make_pod("p", cpu="1", memory="2Gi")
    assert scores(NodeResourcesFit(), pod, snapshot(busy, empty)) == [50, 75]
    assert scores(NodeResourcesLeastAllocated(), pod, snapshot(busy, empty)) == [50, 75]
    # best-effort pods count as 100m / 200Mi so they still spread
    assert scores(NodeResourcesFit(), make_pod("p"), snapshot(empty)) == [97]


def test_most_allocated_and_weights() -> None:
    busy = node_info(make_node("busy"), make_pod("a", cpu="1", memory="2Gi", node_name="busy"))
    empty = node_info(make_node("empty"))
    pod = make_pod("p", cpu="1", memory="2Gi")
    most = NodeResourcesFit({"scoringStrategy": {"type": "MostAllocated"}})
    assert scores(most, pod, snapshot(busy, empty)) == [50, 25]
    cpu_only = NodeResourcesFit({"scoringStrategy": {
        "type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 3}]}})
    assert scores(cpu_only, pod, snapshot(busy, empty)) == [50, 75]


def test_balanced_allocation() -> None:
    node = node_info(make_node("n"))
    assert scores(NodeResourcesBalancedAllocation(), make_pod("p", cpu="1", memory="1Gi"),
                  snapshot(node)) == [93]
    lopsided = node_info(make_node("l"), make_pod("a", cpu="3", node_name="l"))
    got = scores(NodeResourcesBalancedAllocation(), make_pod("p", cpu="1", memory="2Gi"),
                 snapshot(node, lopsided))
    assert got is not None and got[0] > got[1]
    assert scores(NodeResourcesBalancedAllocation(), make_pod("p"), snapshot(node)) is None


def test_preferred_node_affinity() -> None:
    nodes = snapshot(node_info(make_node("n1", labels={"disk": "ssd"})),
                     node_info(make_node("n2", labels={"disk": "ssd", "gpu": "yes"})),
                     node_info(make_node("n3")))
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 8, "preference": {"matchExpressions": [
            {"key": "gpu", "operator": "Exists"}]}},
        {"weight": 50, "preference": {}},  # an empty preference matches nothing
    ]}}
    assert scores(NodeAffinity(), make_pod("p", affinity=affinity), nodes) == [20, 100, 0]
    assert scores(NodeAffinity(), make_pod("p"), nodes) is None


def test_prefer_no_schedule_taints() -> None:
    soft = {"key": "soft", "effect": "PreferNoSchedule"}
    nodes = snapshot(node_info(make_node("n1")),
                     node_info(make_node("n2", taints=[soft])),
                     node_info(make_node("n3", taints=[soft, {**soft, "key": "other"},
                                                       {"key": "hard", "effect": "NoSchedule"}])))
    assert scores(TaintToleration(), make_pod("p"), nodes) == [100, 50, 0]
    tolerant = make_pod("p", tolerations=[{"key": "soft", "operator": "Exists",
                                           "effect": "PreferNoSchedule"}])
    assert scores(TaintToleration(), tolerant, nodes) == [100, 100, 0]


def test_image_locality() -> None:
    images = [{"names": ["busybox:latest"], "sizeBytes": 500 * MB}]
    nodes = snapshot(node_info(make_node("n1", images=images)), node_info(make_node("n2")))
    assert scores(ImageLocality(), make_pod("p"), nodes) == [23, 0]


def test_scores_equal_on_every_node_are_skipped() -> None:
    plain = snapshot(node_info(make_node("a")), node_info(make_node("b")))
    assert scores(TaintToleration(), make_pod("p"), plain) is None  # no PreferNoSchedule taint
    assert scores(ImageLocality(), make_pod("p"), plain) is None  # no node has the image
