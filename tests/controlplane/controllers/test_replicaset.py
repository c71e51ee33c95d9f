"""ReplicaSet controller: given these caches, expect these API calls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.api import errors
from controlplane.client.rest import PODS, REPLICASETS
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.testing import Harness, build, harness, pod, replicaset

LABELS = {"app": "web"}


def setup(rs: dict, *pods: dict) -> tuple[Harness, ReplicaSetController]:
    h = harness()
    h.cache(REPLICASETS, rs)
    h.cache(PODS, *pods)
    return h, build(h, ReplicaSetController)


async def test_creates_missing_pods_from_the_template_in_slow_start_batches() -> None:
    rs = replicaset("web", LABELS, 3)
    h, c = setup(rs)
    await c.sync("default/web")
    creates = h.client.bodies("create", "pods")
    assert len(creates) == 3
    for body in creates:
        assert body["metadata"]["generateName"] == "web-"
        assert body["metadata"]["labels"] == LABELS
        assert body["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "uid-web",
            "controller": True, "blockOwnerDeletion": True}]
        assert body["spec"]["containers"][0]["image"] == "busybox"
    assert [r for r, _ in h.events()] == ["SuccessfulCreate"] * 3
    # status: the RS had no pods when the sync began; observedGeneration is now current
    status = h.client.bodies("patch", "replicasets/status")[-1]["status"]
    assert status["replicas"] == 0 and status["observedGeneration"] == 1


async def test_expectations_stop_a_second_create_until_the_informer_sees_the_pods() -> None:
    h, c = setup(replicaset("web", LABELS, 2))
    await c.sync("default/web")
    assert len(h.client.bodies("create", "pods")) == 2
    await c.sync("default/web")  # the watch is slow: the cache still shows no pods
    assert len(h.client.bodies("create", "pods")) == 2
    assert c.expectations.pending("default/web") == (2, 0)
    created = [o for (r, _, _), o in h.client.objects.items() if r == "pods"]
    for p in created:
        h.cache(PODS, p)
        c._add_pod(p)
    assert c.expectations.satisfied("default/web")
    await c.sync("default/web")
    assert len(h.client.bodies("create", "pods")) == 2


async def test_expectations_expire_after_five_minutes() -> None:
    h, c = setup(replicaset("web", LABELS, 1))
    now = [0.0]
    c.expectations.clock = lambda: now[0]
    await c.sync("default/web")
    await c.sync("default/web")
    assert len(h.client.bodies("create", "pods")) == 1
    now[0] = 301.0
    await c.sync("default/web")
    assert len(h.client.bodies("create", "pods")) == 2


async def test_failed_creates_set_replica_failure_and_lower_expectations() -> None:
    h, c = setup(replicaset("web", LABELS, 5))
    h.client.fail[("create", "pods")] = errors.Forbidden(
        'pods "web-x" is forbidden: exceeded quota: q')
    with pytest.raises(errors.Forbidden):
        await c.sync("default/web")
    assert len(h.client.bodies("create", "pods")) == 1  # the first batch failed: no more
    assert c.expectations.satisfied("default/web")
    assert h.events() == [("FailedCreate",
                           'Error creating: pods "web-x" is forbidden: exceeded quota: q')]
    status = h.client.bodies("patch", "replicasets/status")[-1]["status"]
    (cond,) = status["conditions"]
    assert cond["type"] == "ReplicaFailure" and cond["status"] == "True"
    assert cond["reason"] == "FailedCreate" and "exceeded quota" in cond["message"]


async def test_replica_failure_is_cleared_once_creates_succeed() -> None:
    rs = replicaset("web", LABELS, 1, status={"replicas": 0, "conditions": [{
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "quota"}]})
    h, c = setup(rs)
    await c.sync("default/web")
    status = h.client.bodies("patch", "replicasets/status")[-1]["status"]
    assert status["conditions"] is None  # removed by the merge patch


async def test_surplus_pods_are_deleted_unscheduled_then_pending_then_not_ready() -> None:
    rs = replicaset("web", LABELS, 2)
    pods = [
        pod("ready-old", LABELS, owner=rs, phase="Running", ready=True, node="n1", created=1),
        pod("unscheduled", LABELS, owner=rs, created=2),
        pod("pending", LABELS, owner=rs, node="n1", created=3),
        pod("not-ready", LABELS, owner=rs, phase="Running", node="n1", created=4),
        pod("ready-new", LABELS, owner=rs, phase="Running", ready=True, node="n2", created=5),
    ]
    h, c = setup(rs, *pods)
    await c.sync("default/web")
    assert sorted(n for v, r, n in h.client.actions() if v == "delete") == [
        "not-ready", "pending", "unscheduled"]
    assert c.expectations.pending("default/web") == (0, 3)
    for name in ("not-ready", "pending", "unscheduled"):
        c._delete_pod(next(p for p in pods if p["metadata"]["name"] == name))
    assert c.expectations.satisfied("default/web")


async def test_among_ready_pods_the_newest_goes_first() -> None:
    rs = replicaset("web", LABELS, 1)
    pods = [pod(f"p{i}", LABELS, owner=rs, phase="Running", ready=True, node=f"n{i}",
                created=i, ready_since=i) for i in range(3)]
    h, c = setup(rs, *pods)
    await c.sync("default/web")
    assert sorted(n for v, r, n in h.client.actions() if v == "delete") == ["p1", "p2"]


async def test_adopts_matching_orphans_releases_strays_and_leaves_others_alone() -> None:
    rs = replicaset("web", LABELS, 2)
    other = replicaset("other", {"app": "other"}, 1)
    orphan = pod("orphan", LABELS)
    stray = pod("stray", {"app": "moved"}, owner=rs)
    foreign = pod("foreign", LABELS, owner=other)
    mine = pod("mine", LABELS, owner=rs)
    h, c = setup(rs, orphan, stray, foreign, mine)
    h.cache(REPLICASETS, other)
    await c.sync("default/web")
    patches = {c.name: c for c in h.client.calls if c.verb == "patch" and c.resource == "pods"}
    assert set(patches) == {"orphan", "stray"}
    assert patches["orphan"].patch_type == "application/strategic-merge-patch+json"
    assert patches["orphan"].body == {"metadata": {"ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "uid-web",
        "controller": True, "blockOwnerDeletion": True}], "uid": "uid-orphan"}}
    assert patches["stray"].body == {"metadata": {"ownerReferences": [
        {"$patch": "delete", "uid": "uid-web"}], "uid": "uid-stray"}}
    assert ("get", "replicasets", "web") in h.client.actions(reads=True)  # re-checked owner
    assert h.client.bodies("create", "pods") == []  # orphan + mine = 2 replicas


async def test_a_deleting_rs_adopts_nothing_and_creates_nothing() -> None:
    rs = replicaset("web", LABELS, 2)
    rs["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    h, c = setup(rs, pod("orphan", LABELS))
    await c.sync("default/web")
    assert [a for a in h.client.actions() if a[1] != "replicasets/status"] == []


async def test_status_counts_ready_available_and_fully_labeled() -> None:
    rs = replicaset("web", LABELS, 3)
    rs["spec"]["minReadySeconds"] = 10
    rs["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    pods = [
        pod("a", {**LABELS, "extra": "x"}, owner=rs, phase="Running", ready=True,
            ready_since=-60),
        pod("b", LABELS, owner=rs, phase="Running", ready=True, ready_since=-5),
        pod("c", LABELS, owner=rs),
        pod("done", LABELS, owner=rs, phase="Succeeded"),
        pod("going", LABELS, owner=rs, deleting=True),
    ]
    h, c = setup(rs, *pods)
    await c.sync("default/web")
    status = h.client.bodies("patch", "replicasets/status")[-1]["status"]
    assert status["replicas"] == 3
    assert status["fullyLabeledReplicas"] == 1
    assert status["readyReplicas"] == 2
    assert status["availableReplicas"] == 1
    assert h.client.bodies("create", "pods") == []  # inactive pods don't count but 3 do


async def test_unchanged_status_is_not_written() -> None:
    rs = replicaset("web", LABELS, 1, status={"replicas": 1, "fullyLabeledReplicas": 1,
                                                    "observedGeneration": 1})
    h, c = setup(rs, pod("a", LABELS, owner=rs))
    await c.sync("default/web")
    assert h.client.actions() == []


async def test_min_ready_seconds_requeues_until_available() -> None:
    rs = replicaset("web", LABELS, 1)
    rs["spec"]["minReadySeconds"] = 30
    h, c = setup(rs, pod("a", LABELS, owner=rs, phase="Running", ready=True, ready_since=-5))
    await c.sync("default/web")
    h.clock[0] += timedelta(seconds=60)
    assert len(c.queue._timers) == 1  # re-checked after minReadySeconds
    await c.queue.shut_down()


async def test_pod_handlers_map_to_the_owner_and_orphans_to_matching_sets() -> None:
    rs = replicaset("web", LABELS, 1)
    h, c = setup(rs)
    c._add_pod(pod("orphan", LABELS))
    c._add_pod(pod("unrelated", {"app": "x"}))
    assert await c.queue.get() == "default/web"
    assert len(c.queue) == 0
    c.expectations.expect_deletions("default/web", ["default/a"])
    old = pod("a", LABELS, owner=rs)
    new = pod("a", LABELS, owner=rs, deleting=True)
    new["metadata"]["resourceVersion"] = "2"
    c._update_pod(old, new)  # graceful deletion observed as soon as it is requested
    assert c.expectations.satisfied("default/web")


async def test_a_gone_replicaset_is_a_successful_noop() -> None:
    h = harness()
    c = build(h, ReplicaSetController)
    c.expectations.expect_creations("default/gone", 3)
    await c.sync("default/gone")
    assert h.client.actions() == [] and c.expectations.satisfied("default/gone")
