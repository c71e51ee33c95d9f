"""Filter plugins, one node at a time: each returns None (fits) or the Kubernetes reason."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.tolerations import tolerates
from controlplane.scheduler.nodeinfo import NodeInfo
from controlplane.scheduler.plugin import Code, CycleState, FilterPlugin, Status
from controlplane.scheduler.plugins.node_affinity import NodeAffinity
from controlplane.scheduler.plugins.node_basics import NodeName, NodeReady, NodeUnschedulable
from controlplane.scheduler.plugins.node_ports import NodePorts
from controlplane.scheduler.plugins.resources import NodeResourcesFit
from controlplane.scheduler.plugins.taint_toleration import TaintToleration
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.testing import make_node, make_pod, node_info, snapshot


def run(plugin: FilterPlugin, pod: dict[str, Any], node: NodeInfo) -> Status | None:
    state = CycleState()
    info = PodInfo(pod)
    status, _ = plugin.pre_filter(state, info, snapshot(node))
    if status is not None and status.code == Code.SKIP:
        return None  # the framework skips the plugin's filter: the node passes it
    if status is not None:
        return status
    single = plugin.filter(state, info, node)
    assert plugin.filter_nodes(state, info, [node]) == [single]  # the batch agrees
    return single


# -- NodeUnschedulable, NodeName, NodeReady ------------------------------------------------------

def test_cordoned_node_rejects_unless_tolerated() -> None:
    node = node_info(make_node("n", unschedulable=True))
    status = run(NodeUnschedulable(), make_pod("p"), node)
    assert status == Status(Code.UNRESOLVABLE, ("node(s) were unschedulable",))
    tolerant = make_pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                           "operator": "Exists", "effect": "NoSchedule"}])
    assert run(NodeUnschedulable(), tolerant, node) is None
    assert run(NodeUnschedulable(), make_pod("p"), node_info(make_node("m"))) is None


def test_node_name() -> None:
    node = node_info(make_node("a"))
    assert run(NodeName(), make_pod("p", nodeName="a"), node) is None
    assert run(NodeName(), make_pod("p"), node) is None
    assert run(NodeName(), make_pod("p", nodeName="b"), node) == Status.unresolvable(
        "node(s) didn't match the requested node name")


@pytest.mark.parametrize("ready,taint", [("False", "node.kubernetes.io/not-ready"),
                                         (None, "node.kubernetes.io/not-ready"),
                                         ("Unknown", "node.kubernetes.io/unreachable")])
def test_not_ready_nodes_read_as_their_condition_taint(ready: str | None, taint: str) -> None:
    node = node_info(make_node("n", ready=ready))
    assert run(NodeReady(), make_pod("p"), node) == Status.unresolvable(
        f"node(s) had untolerated taint {{{taint}: }}")
    tolerant = make_pod("p", tolerations=[{"key": taint, "operator": "Exists"}])
    assert run(NodeReady(), tolerant, node) is None
    assert run(NodeReady(), make_pod("p"), node_info(make_node("r"))) is None


# -- TaintToleration -----------------------------------------------------------------------------

@pytest.mark.parametrize("toleration,taint,expected", [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"operator": "Exists"}, {"key": "any", "value": "x", "effect": "NoExecute"}, True),
    ({"operator": "Exists", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}, False),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"},
     {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Lt", "value": "1"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "k"}, {"key": "k", "effect": "NoSchedule"}, True),  # Equal with both values empty
])
def test_toleration_matching(toleration: dict, taint: dict, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def test_untolerated_taint_message_names_the_first() -> None:
    taints = [{"key": "soft", "effect": "PreferNoSchedule"},
              {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
              {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]
    node = node_info(make_node("n", taints=taints))
    assert run(TaintToleration(), make_pod("p"), node) == Status.unresolvable(
        "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }")
    partly = make_pod("p", tolerations=[{"key": "node-role.kubernetes.io/control-plane",
                                         "operator": "Exists"}])
    assert run(TaintToleration(), partly, node) == Status.unresolvable(
        "node(s) had untolerated taint {dedicated: gpu}")
    everything = make_pod("p", tolerations=[{"operator": "Exists"}])
    assert run(TaintToleration(), everything, node) is None


# -- NodeAffinity ---------------------------------------------------------------------------------

def _required(*terms: dict) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}


def _expr(key: str, operator: str, *values: str) -> dict:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


@pytest.mark.parametrize("affinity,fits", [
    (_required(_expr("disk", "In", "ssd", "nvme")), True),
    (_required(_expr("disk", "NotIn", "ssd")), False),
    (_required(_expr("missing", "NotIn", "x")), True),
    (_required(_expr("disk", "Exists")), True),
    (_required(_expr("disk", "DoesNotExist")), False),
    (_required(_expr("cores", "Gt", "8")), True),
    (_required(_expr("cores", "Gt", "16")), False),
    (_required(_expr("cores", "Lt", "17")), True),
    (_required(_expr("disk", "Gt", "1")), False),  # not an integer label
    (_required(_expr("disk", "In")), False),  # invalid term: matches nothing
    (_required(_expr("disk", "In", "hdd"), _expr("zone", "In", "a")), True),  # terms are ORed
    (_required({"matchFields": [{"key": "metadata.name", "operator": "In",
                                 "values": ["n1"]}]}), True),
    (_required({"matchFields": [{"key": "metadata.name", "operator": "NotIn",
                                 "values": ["n1"]}]}), False),
    (_required({}), False),  # an empty term selects no node
    (_required(), False),  # required with no terms: nothing fits
])
def test_required_node_affinity(affinity: dict, fits: bool) -> None:
    node = node_info(make_node("n1", labels={"disk": "ssd", "cores": "16", "zone": "a"}))
    status = run(NodeAffinity(), make_pod("p", affinity=affinity), node)
    assert (status is None) is fits
    if not fits:
        assert status is not None and status.code == Code.UNRESOLVABLE


def test_node_selector() -> None:
    node = node_info(make_node("n", labels={"disk": "ssd"}))
    assert run(NodeAffinity(), make_pod("p", nodeSelector={"disk": "ssd"}), node) is None
    assert run(NodeAffinity(), make_pod("p", nodeSelector={"disk": ""}), node) == (
        Status.unresolvable("node(s) didn't match Pod's node affinity/selector"))


def test_pinned_node_names_narrow_prefilter() -> None:
    pinned = _required({"matchFields": [{"key": "metadata.name", "operator": "In",
                                         "values": ["a"]}]},
                       {"matchFields": [{"key": "metadata.name", "operator": "In",
                                         "values": ["b"]}]})
    state = CycleState()
    _, names = NodeAffinity().pre_filter(state, PodInfo(make_pod("p", affinity=pinned)),
                                         snapshot())
    assert names == {"a", "b"}
    both = _required(_expr("disk", "Exists"), pinned["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0])
    assert NodeAffinity().pre_filter(state, PodInfo(make_pod("p", affinity=both)),
                                     snapshot())[1] is None


# -- NodeResourcesFit -----------------------------------------------------------------------------

def test_fit_counts_bound_and_pending_pods() -> None:
    node = node_info(make_node("n", cpu="2", memory="4Gi"),
                     make_pod("a", cpu="1", memory="1Gi", node_name="n"),
                     make_pod("b", cpu="500m", node_name="n"))
    assert run(NodeResourcesFit(), make_pod("p", cpu="500m", memory="3Gi"), node) is None
    assert run(NodeResourcesFit(), make_pod("p", cpu="501m", memory="3Gi"), node) == (
        Status.unschedulable("Insufficient cpu"))
    assert run(NodeResourcesFit(), make_pod("p", cpu="1", memory="4Gi"), node) == (
        Status.unschedulable("Insufficient cpu", "Insufficient memory"))


def test_fit_pods_ephemeral_storage_and_extended() -> None:
    node = node_info(make_node("n", pods=1, ephemeral="1Gi", extra={"example.com/dev": "1"}),
                     make_pod("a", node_name="n"))
    pod = make_pod("p", containers=[{"name": "c", "resources": {"requests": {
        "ephemeral-storage": "2Gi", "example.com/dev": "2"}}}])
    assert run(NodeResourcesFit(), pod, node) == Status.unschedulable(
        "Too many pods", "Insufficient ephemeral-storage", "Insufficient example.com/dev")
    assert run(NodeResourcesFit(), make_pod("p"), node) == Status.unschedulable("Too many pods")


def test_best_effort_pod_fits_a_full_node() -> None:
    node = node_info(make_node("n", cpu="1"), make_pod("a", cpu="1", node_name="n"))
    assert run(NodeResourcesFit(), make_pod("p"), node) is None


# -- NodePorts ------------------------------------------------------------------------------------

def _ports(*ports: dict) -> dict:
    return {"containers": [{"name": "c", "ports": list(ports)}]}


@pytest.mark.parametrize("used,wanted,conflict", [
    ({"containerPort": 80, "hostPort": 80}, {"containerPort": 80, "hostPort": 80}, True),
    ({"containerPort": 80, "hostPort": 80}, {"containerPort": 80, "hostPort": 81}, False),
    ({"containerPort": 80, "hostPort": 80},
     {"containerPort": 80, "hostPort": 80, "protocol": "UDP"}, False),
    ({"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.1"},
     {"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.2"}, False),
    ({"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.1"},
     {"containerPort": 80, "hostPort": 80}, True),  # 0.0.0.0 clashes with every address
    ({"containerPort": 80, "hostPort": 80},
     {"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.2"}, True),
    ({"containerPort": 80}, {"containerPort": 80}, False),  # no host ports at all
])
def test_host_port_conflicts(used: dict, wanted: dict, conflict: bool) -> None:
    node = node_info(make_node("n"), make_pod("a", node_name="n", **_ports(used)))
    status = run(NodePorts(), make_pod("p", **_ports(wanted)), node)
    assert (status == Status.unschedulable(
        "node(s) didn't have free ports for the requested pod ports")) is conflict
    assert (status is None) is not conflict
