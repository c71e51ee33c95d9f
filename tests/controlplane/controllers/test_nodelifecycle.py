"""Node lifecycle: given nodes, leases and pods (and a clock), expect these status, taint and
pod writes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controlplane.client.rest import LEASES, NODES, PODS
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.nodelifecycle.taints import (
    IMMEDIATELY,
    Mode,
    desired_taints,
    eviction_time,
    tolerates,
)
from controlplane.controllers.testing import NOW, Harness, harness, pod, stamp

Object = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
DEFAULT_TOLERATIONS = [{"key": NOT_READY, "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 300},
                       {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 300}]


def node(name: str, ready: str | None = "True", *, taints: list[Object] | None = None,
         zone: str = "z", heartbeat: int = 0) -> Object:
    conditions = []
    if ready is not None:
        conditions = [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                       "lastHeartbeatTime": stamp(heartbeat), "lastTransitionTime": stamp()},
                      {"type": "MemoryPressure", "status": "False",
                       "lastHeartbeatTime": stamp(heartbeat), "lastTransitionTime": stamp()}]
    spec: Object = {"taints": taints} if taints else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "3",
                         "labels": {"topology.kubernetes.io/zone": zone},
                         "creationTimestamp": stamp(-600)},
            "spec": spec, "status": {"conditions": conditions}}


def lease(name: str, renewed: int = 0) -> Object:
    return {"metadata": {"name": name, "namespace": "kube-node-lease", "resourceVersion": "1"},
            "spec": {"holderIdentity": name, "renewTime": stamp(renewed)}}


def bound(name: str, node_name: str, *, tolerations: list[Object] | None = None,
          ready: bool = True) -> Object:
    p = pod(name, {"app": "x"}, phase="Running", ready=ready, node=node_name)
    p["spec"]["tolerations"] = DEFAULT_TOLERATIONS if tolerations is None else tolerations
    return p


def setup(*nodes: Object, pods: tuple[Object, ...] = (), grace: float = 40.0
          ) -> tuple[Harness, Any]:
    h = harness()
    h.cache(NODES, *nodes)
    h.cache(PODS, *pods)
    ctx = h.context()
    ctx.options.update(node_monitor_grace_period=grace)
    return h, NodeLifecycleController(ctx)


def later(h: Harness, seconds: float) -> None:
    h.clock[0] = NOW + timedelta(seconds=seconds)


def conditions(h: Harness) -> dict[str, Object]:
    [body] = h.client.bodies("update", "nodes/status")
    return {c["type"]: c for c in body["status"]["conditions"]}


async def test_a_silent_node_becomes_unknown_and_tainted_unreachable() -> None:
    h, c = setup(node("dead"), node("alive", zone="z"), node("alive2", zone="z"))
    await c.sync("dead")
    assert h.client.actions() == []  # seen at NOW: within the grace period
    assert "dead" in c.queue._timers  # looked at again when the grace period runs out
    later(h, 41)
    await c.sync("dead")
    assert h.client.actions() == [("update", "nodes/status", "dead"), ("update", "nodes", "dead")]
    ready = conditions(h)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert ready["lastHeartbeatTime"] == stamp() and ready["lastTransitionTime"] == stamp(41)
    assert conditions(h)["MemoryPressure"]["status"] == "Unknown"
    assert conditions(h)["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    [tainted] = h.client.bodies("update", "nodes")
    assert tainted["spec"]["taints"] == [
        {"key": UNREACHABLE, "effect": "NoSchedule"},
        {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp(41)}]
    assert h.events() == [("NodeNotReady", "Node dead status is now: NodeNotReady")]


async def test_a_renewed_lease_keeps_the_node_alive() -> None:
    h, c = setup(node("n1"), node("n2"))
    h.cache(LEASES, lease("n1"))
    await c.sync("n1")
    later(h, 30)
    renewed = lease("n1", 30)
    h.cache(LEASES, renewed)
    c._lease_seen(renewed)  # the watch delivers the renewal at +30s
    later(h, 60)
    await c.sync("n1")
    assert h.client.actions() == []
    later(h, 71)
    await c.sync("n1")
    assert h.client.actions()[0] == ("update", "nodes/status", "n1")


async def test_a_node_that_never_posted_gets_the_startup_grace_from_its_creation() -> None:
    h, c = setup(node("new", ready=None), node("ok"))
    later(h, -600 + 59)
    await c.sync("new")
    assert h.client.actions() == []
    later(h, -600 + 61)
    await c.sync("new")
    assert conditions(h)["Ready"]["reason"] == "NodeStatusNeverUpdated"


async def test_not_ready_nodes_get_not_ready_taints_and_healthy_ones_lose_them() -> None:
    h, c = setup(node("sick", ready="False"), node("ok"), node("ok2"))
    await c.sync("sick")
    [body] = h.client.bodies("update", "nodes")
    assert [(t["key"], t["effect"]) for t in body["spec"]["taints"]] == [
        (NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]
    healed = node("healed", taints=[{"key": UNREACHABLE, "effect": "NoExecute"},
                                    {"key": UNREACHABLE, "effect": "NoSchedule"},
                                    {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    h2, c2 = setup(healed, node("ok"))
    await c2.sync("healed")
    [body] = h2.client.bodies("update", "nodes")
    assert body["spec"]["taints"] == [{"key": "dedicated", "value": "gpu",
                                       "effect": "NoSchedule"}]


async def test_pods_on_an_unreachable_node_are_marked_not_ready_then_evicted() -> None:
    taint = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp()}
    pods = (bound("default-300s", "dead"),
            bound("quick", "dead", tolerations=[{"key": UNREACHABLE, "operator": "Exists",
                                                 "effect": "NoExecute",
                                                 "tolerationSeconds": 5}]),
            bound("untolerating", "dead", tolerations=[]),
            bound("forever", "dead", tolerations=[{"operator": "Exists"}]),
            bound("elsewhere", "ok"))
    dead = node("dead", ready="Unknown",
                taints=[{"key": UNREACHABLE, "effect": "NoSchedule"}, taint])
    h, c = setup(dead, node("ok"), node("ok2"), pods=pods)
    await c.sync("dead")
    assert ("update", "pods/status", "default-300s") in h.client.actions()
    assert ("update", "pods/status", "elsewhere") not in h.client.actions()
    deletes = [name for verb, res, name in h.client.actions() if verb == "delete"]
    assert deletes == ["untolerating"]
    [patch] = [b for b in h.client.bodies("patch", "pods/status")]
    assert patch["status"]["conditions"][0]["reason"] == "DeletionByTaintManager"
    assert ("TaintManagerEviction", "Marking for deletion Pod default/untolerating") in h.events()
    assert ("NodeNotReady", "Node is not ready") in h.events()
    gone = bound("untolerating", "dead", tolerations=[])
    gone["metadata"]["deletionTimestamp"] = stamp(30)  # as the watch shows it next
    h.cache(PODS, gone)
    assert "dead" in c.queue._timers  # back when the 5s toleration runs out
    later(h, 6)
    await c.sync("dead")
    assert [n for v, _, n in h.client.actions() if v == "delete"] == ["untolerating", "quick"]
    later(h, 301)
    await c.sync("dead")
    assert "default-300s" in [n for v, _, n in h.client.actions() if v == "delete"]
    assert "forever" not in [n for v, _, n in h.client.actions() if v == "delete"]


async def test_all_nodes_down_means_no_no_execute_taints() -> None:
    taints = [{"key": UNREACHABLE, "effect": "NoSchedule"},
              {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp()}]
    h, c = setup(node("a", ready="Unknown", taints=taints), node("b", ready="Unknown"))
    await c.sync("a")
    [body] = h.client.bodies("update", "nodes")
    assert body["spec"]["taints"] == [{"key": UNREACHABLE, "effect": "NoSchedule"}]


async def test_a_partially_disrupted_small_zone_adds_no_new_no_execute_taints() -> None:
    nodes = [node(f"d{i}", ready="Unknown") for i in range(3)] + [node("ok")]
    h, c = setup(*nodes)
    await c.sync("d0")
    [body] = h.client.bodies("update", "nodes")
    assert body["spec"]["taints"] == [{"key": UNREACHABLE, "effect": "NoSchedule"}]


def test_taint_rules() -> None:
    assert tolerates({"operator": "Exists"}, {"key": "k", "effect": "NoExecute"})
    assert tolerates({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "x"})
    assert not tolerates({"key": "k", "value": "v", "effect": "NoSchedule"},
                         {"key": "k", "value": "v", "effect": "NoExecute"})
    cordoned = node("c")
    cordoned["spec"]["unschedulable"] = True
    assert desired_taints(cordoned, "True", Mode.APPLY, stamp()) == [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    p = bound("p", "n", tolerations=[])
    assert eviction_time(p, [{"key": "k", "effect": "NoSchedule"}], lambda t: NOW) is None
    assert eviction_time(p, [{"key": "k", "effect": "NoExecute"}], lambda t: NOW) is IMMEDIATELY


async def test_pods_bound_to_troubled_nodes_bring_the_node_back_to_the_queue() -> None:
    bare = node("bare")
    del bare["spec"]
    h, c = setup(bare, node("dead", ready="Unknown"))
    c._pod_seen(bound("p", "bare"))
    c._pod_seen(bound("q", "dead"))
    c._pod_seen(bound("r", "missing"))
    assert c.queue._dirty == {"dead"}
