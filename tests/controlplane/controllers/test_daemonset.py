"""DaemonSet controller: given these caches, expect these API calls and events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from controlplane.api import errors
from controlplane.client.rest import DAEMONSETS, NODES, PODS
from controlplane.controllers.daemonset import DaemonSetController, history, util
from controlplane.controllers.testing import Harness, build, harness, pod, stamp

Object = dict[str, Any]
LABELS = {"app": "agent"}
CRS = history.CONTROLLERREVISIONS


def node(name: str, taints: list[Object] | None = None) -> Object:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "labels": {}},
            "spec": {"taints": taints or []}, "status": {}}


def daemonset(*, image: str = "agent:1", strategy: Object | None = None,
              status: Object | None = None, generation: int = 1,
              history_limit: int = 10) -> Object:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "uid-agent",
                         "generation": generation, "resourceVersion": "1",
                         "annotations": {util.TEMPLATE_GENERATION: str(generation)}},
            "spec": {"selector": {"matchLabels": LABELS}, "revisionHistoryLimit": history_limit,
                     "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {
                         "maxUnavailable": 1, "maxSurge": 0}},
                     "template": {"metadata": {"labels": dict(LABELS)}, "spec": {
                         "containers": [{"name": "c", "image": image}]}}},
            "status": dict(status or {})}


def revision_of(ds: Object, number: int) -> Object:
    cr = history.snapshot(ds, number, "apps/v1", "DaemonSet")
    cr["metadata"].update(uid=f"uid-{cr['metadata']['name']}", resourceVersion="1")
    return cr


def daemon_pod(name: str, ds: Object, node_name: str, *, ready: bool = True,
               phase: str = "Running", unscheduled: bool = False) -> Object:
    labels = dict(LABELS, **{util.HASH_LABEL: history.template_hash(ds)})
    p = pod(name, labels, owner=ds, phase=phase, ready=ready, ready_since=-60,
            node="" if unscheduled else node_name)
    if unscheduled:
        util.pin_to_node(p["spec"], node_name)
    return p


def setup(ds: Object, nodes: list[Object], pods: Sequence[Object] = (),
          revisions: Sequence[Object] = ()) -> tuple[Harness, Any]:
    h = harness()
    h.cache(DAEMONSETS, ds)
    h.cache(NODES, *nodes)
    h.cache(PODS, *pods)
    h.cache(CRS, *revisions)
    return h, build(h, DaemonSetController)


def status_written(h: Harness) -> Object:
    return dict(h.client.bodies("patch", "daemonsets/status")[-1]["status"])


async def test_creates_the_revision_then_one_pinned_pod_per_eligible_node() -> None:
    ds = daemonset()
    nodes = [node("n1"), node("n2"), node("n3"),
             node("tainted", [{"key": "dedicated", "effect": "NoSchedule"}])]
    h, c = setup(ds, nodes)
    await c.sync("default/agent")
    (cr,) = h.client.bodies("create", "controllerrevisions")
    hash_ = history.template_hash(ds)
    assert cr["metadata"]["name"] == f"agent-{hash_}"
    assert cr["metadata"]["labels"] == dict(LABELS, **{util.HASH_LABEL: hash_})
    assert cr["revision"] == 1
    assert cr["data"]["spec"]["template"]["$patch"] == "replace"
    assert cr["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    creates = h.client.bodies("create", "pods")
    pinned = sorted(p["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchFields"][0]["values"][0] for p in creates)
    assert pinned == ["n1", "n2", "n3"]
    body = creates[0]
    assert body["metadata"]["generateName"] == "agent-"
    assert body["metadata"]["labels"] == dict(LABELS, **{
        util.HASH_LABEL: hash_, util.GENERATION_LABEL: "1"})
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-agent"
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute"} in body["spec"]["tolerations"]
    assert [r for r, _ in h.events()] == ["SuccessfulCreate"] * 3
    status = status_written(h)
    assert status["desiredNumberScheduled"] == 3 and status["currentNumberScheduled"] == 0
    assert status["observedGeneration"] == 1 and status["numberUnavailable"] == 3


async def test_expectations_stop_a_second_create_until_the_pods_are_seen() -> None:
    ds = daemonset()
    h, c = setup(ds, [node("n1"), node("n2")])
    await c.sync("default/agent")
    h.cache(CRS, *[o for (r, _, _), o in h.client.objects.items() if r == "controllerrevisions"])
    await c.sync("default/agent")
    assert len(h.client.bodies("create", "pods")) == 2
    assert len(h.client.bodies("create", "controllerrevisions")) == 1
    for (r, _, _), p in list(h.client.objects.items()):
        if r == "pods":
            h.cache(PODS, p)
            c._add_pod(p)
    assert c.expectations.satisfied("default/agent")
    await c.sync("default/agent")
    assert len(h.client.bodies("create", "pods")) == 2


async def test_pods_leave_nodes_that_no_longer_fit_and_unscheduled_pods_of_gone_nodes() -> None:
    ds = daemonset()
    pods = [daemon_pod("on-n1", ds, "n1"), daemon_pod("on-tainted", ds, "n2"),
            daemon_pod("for-gone", ds, "gone", unscheduled=True)]
    h, c = setup(ds, [node("n1"), node("n2", [{"key": "x", "effect": "NoExecute"}])], pods,
                 [revision_of(ds, 1)])
    await c.sync("default/agent")
    assert sorted(n for v, r, n in h.client.actions() if v == "delete") == [
        "for-gone", "on-tainted"]
    assert h.client.bodies("create", "pods") == []
    status = status_written(h)
    assert status["numberMisscheduled"] == 1 and status["desiredNumberScheduled"] == 1


async def test_rolling_update_deletes_max_unavailable_old_pods() -> None:
    old = daemonset(image="agent:1")
    ds = daemonset(image="agent:2", generation=2)
    pods = [daemon_pod(f"p{i}", old, f"n{i}") for i in (1, 2, 3)]
    h, c = setup(ds, [node("n1"), node("n2"), node("n3")], pods, [revision_of(old, 1)])
    await c.sync("default/agent")
    (cr,) = h.client.bodies("create", "controllerrevisions")
    assert cr["revision"] == 2
    assert [(v, n) for v, r, n in h.client.actions() if r == "pods"] == [("delete", "p1")]
    assert h.events() == [("SuccessfulDelete", "Deleted pod: p1")]
    status = status_written(h)
    assert status["updatedNumberScheduled"] is None  # zero: left out
    assert status["numberAvailable"] == 3 and status["observedGeneration"] == 2


async def test_on_delete_leaves_old_pods_alone() -> None:
    old = daemonset(image="agent:1")
    ds = daemonset(image="agent:2", strategy={"type": "OnDelete"})
    h, c = setup(ds, [node("n1")], [daemon_pod("p1", old, "n1")], [revision_of(old, 1)])
    await c.sync("default/agent")
    assert [a for a in h.client.actions() if a[1] == "pods"] == []


async def test_a_rollback_renumbers_the_matching_revision_and_old_ones_are_cleaned() -> None:
    v1, v2, v3 = (daemonset(image=f"agent:{i}") for i in (1, 2, 3))
    ds = daemonset(image="agent:1", history_limit=1)
    revisions = [revision_of(v1, 1), revision_of(v2, 2), revision_of(v3, 3)]
    pods = [daemon_pod("p1", v2, "n1")]  # v2 still runs: never cleaned
    h, c = setup(ds, [node("n1")], pods, revisions)
    await c.sync("default/agent")
    (updated,) = h.client.bodies("update", "controllerrevisions")
    assert updated["metadata"]["name"] == revisions[0]["metadata"]["name"]
    assert updated["revision"] == 4
    deleted = [n for v, r, n in h.client.actions() if v == "delete" and r == "controllerrevisions"]
    assert deleted == [revisions[2]["metadata"]["name"]]


async def test_a_hash_collision_bumps_collision_count() -> None:
    ds = daemonset()
    other = revision_of(daemonset(image="other"), 1)
    other["metadata"]["name"] = f"agent-{history.template_hash(ds)}"
    h, c = setup(ds, [node("n1")], [], [other])
    with pytest.raises(errors.AlreadyExists):
        await c.sync("default/agent")
    patch = h.client.bodies("patch", "daemonsets/status")[-1]
    assert patch == {"status": {"collisionCount": 1}}
    assert history.template_hash(dict(ds, status={"collisionCount": 1})) != (
        history.template_hash(ds))


async def test_failed_pods_are_deleted_with_a_per_node_back_off() -> None:
    ds = daemonset()
    failed = daemon_pod("p1", ds, "n1", phase="Failed", ready=False)
    h, c = setup(ds, [node("n1")], [failed], [revision_of(ds, 1)])
    await c.sync("default/agent")
    assert [n for v, r, n in h.client.actions() if v == "delete"] == ["p1"]
    assert h.events()[0] == ("FailedDaemonPod", "Found failed daemon pod default/p1 on node n1, "
                             "will try to kill it")
    c._delete_pod(failed)  # observed, but the kubelet rejected the new pod the same way
    h.client.seed(PODS, failed)
    await c.sync("default/agent")
    assert [n for v, r, n in h.client.actions() if v == "delete"] == ["p1"]  # backing off


async def test_an_unschedulable_pod_is_reported_as_failed_placement() -> None:
    ds = daemonset()
    p = daemon_pod("p1", ds, "n1", ready=False, phase="Pending", unscheduled=True)
    p["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                  "reason": "Unschedulable",
                                  "message": "0/1 nodes are available: 1 Insufficient cpu."}]
    h, c = setup(ds, [node("n1")], [p], [revision_of(ds, 1)])
    await c.sync("default/agent")
    assert h.events() == [("FailedPlacement", "failed to place pod on 'n1': 0/1 nodes are "
                           "available: 1 Insufficient cpu.")]


async def test_status_is_written_only_when_it_changes() -> None:
    ds = daemonset(status={"desiredNumberScheduled": 1, "currentNumberScheduled": 1,
                           "numberReady": 1, "numberAvailable": 1, "updatedNumberScheduled": 1,
                           "observedGeneration": 1})
    h, c = setup(ds, [node("n1")], [daemon_pod("p1", ds, "n1")], [revision_of(ds, 1)])
    await c.sync("default/agent")
    assert h.client.actions() == []


async def test_bad_specs_are_events_not_crashes() -> None:
    ds = daemonset(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "x"}})
    h, c = setup(ds, [node("n1")], [daemon_pod("p1", ds, "n1")], [revision_of(ds, 1)])
    await c.sync("default/agent")
    assert ("InvalidSpec", "invalid value for IntOrString: invalid value 'x'") in h.events()
    everything = daemonset()
    everything["spec"]["selector"] = {}
    h, c = setup(everything, [node("n1")])
    await c.sync("default/agent")
    assert h.client.actions() == []
    assert [r for r, _ in h.events()] == ["SelectingAll"]


async def test_node_events_wake_daemonsets_but_heartbeats_do_not() -> None:
    ds = daemonset()
    h, c = setup(ds, [node("n1")])
    before = node("n1")
    beat = dict(before, status={"conditions": [{"type": "Ready", "status": "True",
                                                "lastHeartbeatTime": stamp(10)}]})
    c._update_node(before, beat)
    assert len(c.queue) == 0
    c._update_node(before, dict(before, metadata=dict(before["metadata"], labels={"a": "b"})))
    assert len(c.queue) == 1
