"""DaemonSet rules as tables: node eligibility, the pods it makes, manage, rolling update and
status (pure functions, no controller)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from controlplane.controllers.daemonset import plan, util
from controlplane.controllers.testing import NOW, pod

Object = dict[str, Any]
LABELS = {"app": "agent"}
HASH = "h-new"


def node(name: str, *, labels: dict[str, str] | None = None,
         taints: list[Object] | None = None) -> Object:
    return {"metadata": {"name": name, "labels": dict(labels or {})},
            "spec": {"taints": list(taints or [])}, "status": {}}


def ds(*, spec: Object | None = None, strategy: Object | None = None, min_ready: int = 0,
       generation: str | None = "2") -> Object:
    annotations = {util.TEMPLATE_GENERATION: generation} if generation else {}
    return {"metadata": {"name": "agent", "namespace": "default", "uid": "uid-agent",
                         "annotations": annotations, "generation": 2},
            "spec": {"selector": {"matchLabels": LABELS}, "minReadySeconds": min_ready,
                     "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {
                         "maxUnavailable": 1, "maxSurge": 0}},
                     "template": {"metadata": {"labels": LABELS},
                                  "spec": {"containers": [{"name": "c", "image": "x"}],
                                           **(spec or {})}}}}


def dpod(name: str, node_name: str, *, new: bool = True, ready: bool = True, created: int = 0,
         phase: str = "Running", ready_since: int = -60, deleting: bool = False) -> Object:
    labels = dict(LABELS, **{util.HASH_LABEL: HASH if new else "h-old"})
    p = pod(name, labels, phase=phase, ready=ready, node=node_name, created=created,
            ready_since=ready_since, deleting=deleting)
    return p


def taint(key: str, effect: str = "NoSchedule", value: str = "") -> Object:
    return {"key": key, "value": value, "effect": effect}


# -- eligibility ------------------------------------------------------------------------------

REQUIRED_ZONE_A = {"affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}
NOT_N1 = {"affinity": {"nodeAffinity": {
    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]}}}}


@pytest.mark.parametrize(("spec", "n", "expected"), [
    ({}, node("n1"), (True, True)),
    ({"nodeSelector": {"disk": "ssd"}}, node("n1"), (False, False)),
    ({"nodeSelector": {"disk": "ssd"}}, node("n1", labels={"disk": "ssd"}), (True, True)),
    (REQUIRED_ZONE_A, node("n1", labels={"zone": "a"}), (True, True)),
    (REQUIRED_ZONE_A, node("n1", labels={"zone": "b"}), (False, False)),
    (NOT_N1, node("n1"), (False, False)),
    (NOT_N1, node("n2"), (True, True)),
    ({"nodeName": "n2"}, node("n1"), (False, False)),
    # a NoSchedule taint keeps new pods off but lets a running one stay; NoExecute evicts
    ({}, node("n1", taints=[taint("dedicated")]), (False, True)),
    ({}, node("n1", taints=[taint("dedicated", "NoExecute")]), (False, False)),
    ({}, node("n1", taints=[taint("dedicated", "PreferNoSchedule")]), (True, True)),
    ({"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
     node("n1", taints=[taint("dedicated", "NoExecute")]), (True, True)),
    ({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "a"}]},
     node("n1", taints=[taint("dedicated", value="b")]), (False, True)),
    # the standard DaemonSet tolerations
    ({}, node("n1", taints=[taint("node.kubernetes.io/unschedulable")]), (True, True)),
    ({}, node("n1", taints=[taint("node.kubernetes.io/not-ready", "NoExecute")]), (True, True)),
    ({}, node("n1", taints=[taint("node.kubernetes.io/unreachable", "NoExecute")]),
     (True, True)),
    ({}, node("n1", taints=[taint("node.kubernetes.io/unreachable")]), (False, True)),
    ({}, node("n1", taints=[taint("node.kubernetes.io/network-unavailable")]), (False, True)),
    ({"hostNetwork": True}, node("n1", taints=[taint("node.kubernetes.io/network-unavailable")]),
     (True, True)),
], ids=lambda v: "" if isinstance(v, dict) else str(v))
def test_should_run(spec: Object, n: Object, expected: tuple[bool, bool]) -> None:
    assert util.should_run(n, ds(spec=spec)) == expected


def test_daemon_tolerations_are_added_once_and_replace_a_same_toleration() -> None:
    spec: Object = {"hostNetwork": True, "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300}, {"key": "mine", "operator": "Exists"}]}
    util.add_daemon_tolerations(spec)
    util.add_daemon_tolerations(spec)
    keys = [(t.get("key"), t.get("effect")) for t in spec["tolerations"]]
    assert keys == [
        ("node.kubernetes.io/not-ready", "NoExecute"), ("mine", None),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ("node.kubernetes.io/network-unavailable", "NoSchedule")]
    assert "tolerationSeconds" not in spec["tolerations"][0]  # for ever


def test_pod_template_labels_and_node_pinning() -> None:
    d = ds(spec=REQUIRED_ZONE_A)
    template = util.pod_template(d, "abc")
    assert template["metadata"]["labels"] == dict(
        LABELS, **{"pod-template-generation": "2", "controller-revision-hash": "abc"})
    assert d["spec"]["template"]["metadata"]["labels"] == LABELS  # not mutated
    util.pin_to_node(template["spec"], "n7")
    assert template["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}
    assert util.target_node({"metadata": {}, "spec": template["spec"]}) == "n7"
    assert util.target_node({"metadata": {}, "spec": {"nodeName": "n1"}}) == "n1"
    assert util.target_node({"metadata": {}, "spec": {}}) is None


@pytest.mark.parametrize(("rolling", "desired", "expected"), [
    ({"maxUnavailable": 1, "maxSurge": 0}, 3, (0, 1)),
    ({"maxUnavailable": "50%", "maxSurge": 0}, 3, (0, 2)),  # rounded up
    ({"maxUnavailable": 0, "maxSurge": "10%"}, 3, (1, 0)),
    ({"maxUnavailable": 0, "maxSurge": 0}, 3, (0, 1)),  # would never progress
])
def test_surge_and_unavailable(rolling: Object, desired: int,
                               expected: tuple[int, int]) -> None:
    d = ds(strategy={"type": "RollingUpdate", "rollingUpdate": rolling})
    assert util.surge_and_unavailable(d, desired) == expected


def test_a_bad_int_or_string_is_invalid_spec() -> None:
    d = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "lots"}})
    with pytest.raises(util.InvalidSpec):
        util.surge_and_unavailable(d, 3)


# -- manage -----------------------------------------------------------------------------------


def test_manage_creates_on_eligible_nodes_and_deletes_from_ineligible_ones() -> None:
    nodes = [node("n1"), node("n2"), node("n3", taints=[taint("x", "NoExecute")])]
    grouped = plan.node_pods([dpod("p3", "n3"), dpod("p1", "n1")])
    step = plan.manage(ds(), nodes, grouped, HASH, NOW)
    assert (step.create, step.delete) == (["n2"], ["p3"])


def test_manage_keeps_the_oldest_of_duplicates_and_hands_back_finished_pods() -> None:
    nodes = [node("n1"), node("n2")]
    pods = [dpod("young", "n1", created=5), dpod("old", "n1", created=1),
            dpod("done", "n2", phase="Failed")]
    step = plan.manage(ds(), nodes, plan.node_pods(pods), HASH, NOW)
    assert step.delete == ["young"]
    assert [(n, p["metadata"]["name"]) for n, p in step.finished] == [("n2", "done")]
    assert step.create == []  # n2 gets its pod once the failed one is gone


def test_manage_deletes_unscheduled_pods_pinned_to_a_vanished_node() -> None:
    pending = dpod("pending", "")
    util.pin_to_node(pending["spec"], "gone")
    step = plan.manage(ds(), [node("n1")], plan.node_pods([pending, dpod("bound", "gone2")]),
                       HASH, NOW)
    assert step.delete == ["pending"]  # a bound pod on a gone node is pod GC's
    assert step.create == ["n1"]


def test_manage_with_surge_keeps_old_until_new_is_available() -> None:
    surge = ds(strategy={"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    old, new = dpod("old", "n1", new=False, created=1), dpod("new", "n1", ready=False)
    step = plan.manage(surge, [node("n1")], plan.node_pods([old, new]), HASH, NOW)
    assert step.delete == []
    new = dpod("new", "n1", ready=True)
    step = plan.manage(surge, [node("n1")], plan.node_pods([old, new]), HASH, NOW)
    assert step.delete == ["old"]


# -- rolling update ---------------------------------------------------------------------------


@pytest.mark.parametrize(("pods", "max_unavailable", "deleted"), [
    # all old and available: replace max_unavailable of them
    ([dpod("a", "n1", new=False), dpod("b", "n2", new=False), dpod("c", "n3", new=False)],
     1, ["a"]),
    ([dpod("a", "n1", new=False), dpod("b", "n2", new=False), dpod("c", "n3", new=False)],
     2, ["a", "b"]),
    # a new pod not yet available uses up the budget
    ([dpod("a", "n1", ready=False), dpod("b", "n2", new=False), dpod("c", "n3", new=False)],
     1, []),
    # a node without its pod counts as unavailable
    ([dpod("b", "n2", new=False), dpod("c", "n3", new=False)], 1, []),
    # an old pod that is not available costs nothing to replace
    ([dpod("a", "n1", new=False, ready=False), dpod("b", "n2", new=False),
      dpod("c", "n3", new=False)], 1, ["a"]),
    # done
    ([dpod("a", "n1"), dpod("b", "n2"), dpod("c", "n3")], 1, []),
])
def test_rolling_update_without_surge(pods: list[Object], max_unavailable: int,
                                      deleted: list[str]) -> None:
    d = ds(strategy={"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": 0}})
    nodes = [node("n1"), node("n2"), node("n3")]
    step = plan.rolling_update(d, nodes, plan.node_pods(pods), HASH, NOW)
    assert (step.delete, step.create) == (deleted, [])


def test_rolling_update_honours_min_ready_seconds() -> None:
    d = ds(min_ready=30, strategy={"type": "RollingUpdate",
                                   "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    pods = [dpod("a", "n1", ready_since=-10), dpod("b", "n2", new=False)]
    step = plan.rolling_update(d, [node("n1"), node("n2")], plan.node_pods(pods), HASH, NOW)
    assert step.delete == []  # a is ready but not yet available
    step = plan.rolling_update(d, [node("n1"), node("n2")], plan.node_pods(pods), HASH,
                               NOW + timedelta(seconds=30))
    assert step.delete == ["b"]


def test_rolling_update_with_surge_creates_beside_old_pods_then_deletes_them() -> None:
    d = ds(strategy={"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}})
    nodes = [node("n1"), node("n2")]
    olds = [dpod("a", "n1", new=False), dpod("b", "n2", new=False)]
    step = plan.rolling_update(d, nodes, plan.node_pods(olds), HASH, NOW)
    assert (step.create, step.delete) == (["n1"], [])
    surging = [*olds, dpod("a2", "n1", ready=False)]
    step = plan.rolling_update(d, nodes, plan.node_pods(surging), HASH, NOW)
    assert (step.create, step.delete) == ([], [])  # the surge budget is spent
    surged = [*olds, dpod("a2", "n1")]
    step = plan.rolling_update(d, nodes, plan.node_pods(surged), HASH, NOW)
    assert (step.create, step.delete) == (["n2"], ["a"])


# -- status -----------------------------------------------------------------------------------


def test_status_counts() -> None:
    d = ds(min_ready=10)
    nodes = [node("n1"), node("n2"), node("n3"), node("n4", taints=[taint("x", "NoExecute")])]
    pods = [dpod("a", "n1"), dpod("b", "n2", new=False, ready_since=-5),
            dpod("x", "n4", ready=False)]
    assert plan.status(d, nodes, plan.node_pods(pods), HASH, NOW) == {
        "desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberMisscheduled": 1,
        "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 1,
        "numberUnavailable": 2}


def test_pod_template_generation_label_counts_as_updated() -> None:
    p = pod("a", dict(LABELS, **{util.GENERATION_LABEL: "2"}))
    assert util.is_updated(p, "other-hash", 2)
    assert not util.is_updated(p, "other-hash", 3)
    assert not util.is_updated(p, "", None)


def test_node_pods_skips_finished_pods_being_deleted() -> None:
    gone = dpod("gone", "n1", phase="Succeeded", deleting=True)
    going = dpod("going", "n1", deleting=True)
    assert [p["metadata"]["name"] for p in plan.node_pods([gone, going])["n1"]] == ["going"]
    assert len(plan.node_pods([gone, going], include_deleted_terminal=True)["n1"]) == 2
