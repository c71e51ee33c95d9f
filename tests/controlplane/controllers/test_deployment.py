"""Deployment controller: given these caches, expect these API calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from controlplane.api import errors
from controlplane.client.rest import DEPLOYMENTS, PODS, REPLICASETS
from controlplane.controllers.deployment import DeploymentController, util
from controlplane.controllers.testing import (
    Harness,
    build,
    deployment,
    harness,
    owner_ref,
    pod,
    stamp,
    template,
)

LABELS = {"app": "web"}
Object = dict[str, Any]


def rs_for(d: Object, replicas: int, *, image: str = "busybox", revision: int = 1,
           created: int = 0, available: int | None = None, desired: int | None = None,
           status_replicas: int | None = None) -> Object:
    """A ReplicaSet the controller would have made for `d` with `image`."""
    tmpl = template(LABELS, image)
    pod_hash = util.compute_hash(tmpl, None)
    labels = {**LABELS, util.HASH_LABEL: pod_hash}
    tmpl["metadata"]["labels"] = labels
    name = f"{d['metadata']['name']}-{pod_hash}"
    size = util.replicas(d) if desired is None else desired
    surge = util.max_surge(dict(d, spec=dict(d["spec"], replicas=size)))
    have = replicas if status_replicas is None else status_replicas
    avail = have if available is None else available
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "labels": labels, "resourceVersion": "1", "generation": 1,
                         "creationTimestamp": stamp(created),
                         "ownerReferences": [owner_ref(d)],
                         "annotations": {util.REVISION: str(revision),
                                         util.DESIRED_REPLICAS: str(size),
                                         util.MAX_REPLICAS: str(size + surge)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": tmpl},
            "status": {"replicas": have, "readyReplicas": avail, "availableReplicas": avail,
                       "observedGeneration": 1}}


def setup(d: Object, *rses: Object, pods: tuple[Object, ...] = ()) -> tuple[
        Harness, DeploymentController]:
    h = harness()
    h.cache(DEPLOYMENTS, d)
    h.cache(REPLICASETS, *rses)
    h.cache(PODS, *pods)
    return h, build(h, DeploymentController)


def status_writes(h: Harness) -> list[Object]:
    return [b["status"] for b in h.client.bodies("patch", "deployments/status")]


def rs_updates(h: Harness) -> dict[str, int]:
    return {b["metadata"]["name"]: b["spec"]["replicas"]
            for b in h.client.bodies("update", "replicasets")}


def condition(status: Object, type_: str) -> Object:
    return next(c for c in status["conditions"] if c["type"] == type_)


async def test_a_new_deployment_gets_a_replicaset_of_its_template() -> None:
    d = deployment("web", LABELS, 3)
    h, c = setup(d)
    await c.sync("default/web")
    (rs,) = h.client.bodies("create", "replicasets")
    pod_hash = util.compute_hash(d["spec"]["template"], None)
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["metadata"]["labels"] == {**LABELS, "pod-template-hash": pod_hash}
    assert rs["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web",
        "controller": True, "blockOwnerDeletion": True}]
    assert rs["metadata"]["annotations"] == {util.REVISION: "1", util.DESIRED_REPLICAS: "3",
                                             util.MAX_REPLICAS: "4"}
    assert rs["spec"]["replicas"] == 3
    assert rs["spec"]["selector"] == {"matchLabels": {**LABELS, "pod-template-hash": pod_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    assert h.client.bodies("patch", "deployments") == [
        {"metadata": {"annotations": {util.REVISION: "1"}}}]
    assert h.events() == [("ScalingReplicaSet", f"Scaled up replica set web-{pod_hash} "
                                                "from 0 to 3")]
    last = status_writes(h)[-1]
    assert condition(last, "Progressing")["reason"] == "NewReplicaSetCreated"
    assert condition(last, "Available")["reason"] == "MinimumReplicasUnavailable"
    assert last["observedGeneration"] == 1


async def test_a_complete_rollout_reports_new_replicaset_available() -> None:
    d = deployment("web", LABELS, 3)
    rs = rs_for(d, 3)
    d["metadata"]["annotations"] = {util.REVISION: "1"}
    d["status"] = {"conditions": [{"type": "Progressing", "status": "True",
                                   "reason": "ReplicaSetUpdated", "lastUpdateTime": stamp(),
                                   "lastTransitionTime": stamp()}]}
    h, c = setup(d, rs)
    await c.sync("default/web")
    assert h.client.bodies("create", "replicasets") == []
    (status,) = status_writes(h)
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"],
            status["availableReplicas"], status["unavailableReplicas"]) == (3, 3, 3, 3, None)
    progressing = condition(status, "Progressing")
    assert progressing["reason"] == "NewReplicaSetAvailable"
    assert progressing["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has ' \
                                     "successfully progressed."
    assert condition(status, "Available")["status"] == "True"


async def test_rolling_update_moves_within_max_surge_and_max_unavailable() -> None:
    d = deployment("web", LABELS, 4, image="v2", generation=2)  # surge 1, unavailable 1
    old = rs_for(d, 4, image="v1", revision=1)
    h, c = setup(d, old)
    await c.sync("default/web")
    (new,) = h.client.bodies("create", "replicasets")
    assert new["spec"]["replicas"] == 1  # 4 + 1 pods at most
    assert new["metadata"]["annotations"][util.REVISION] == "2"
    assert rs_updates(h) == {old["metadata"]["name"]: 3}  # 3 of 4 must stay available
    assert h.events()[-1][1] == f"Scaled down replica set {old['metadata']['name']} from 4 to 3"

    steps = [  # (old size, new size, new available) -> expected writes
        ((3, 1, 0), {"new": 2}),  # room under the surge: grow the new one first
        ((3, 2, 0), {}),  # 5 pods, 2 new unavailable: wait
        ((3, 2, 2), {"old": 1}),  # 5 available, 3 needed: two old ones can go
        ((1, 4, 3), {"old": 0}),
    ]
    for (old_size, new_size, new_available), expected in steps:
        old_rs = rs_for(d, old_size, image="v1", revision=1)
        new_rs = rs_for(d, new_size, image="v2", revision=2, created=10,
                        available=new_available)
        h, c = setup(d, old_rs, new_rs)
        await c.sync("default/web")
        names = {old_rs["metadata"]["name"]: "old", new_rs["metadata"]["name"]: "new"}
        assert {names[n]: size for n, size in rs_updates(h).items()} == expected


async def test_unavailable_old_replicas_are_cleaned_up_first() -> None:
    d = deployment("web", LABELS, 4, image="v2", generation=2)
    old = rs_for(d, 4, image="v1", revision=1, available=2)
    new_rs = rs_for(d, 1, image="v2", revision=2, created=10, available=1)
    h, c = setup(d, old, new_rs)
    await c.sync("default/web")
    # all=5, minAvailable=3, new unavailable=0 -> may drop 2: the 2 unhealthy ones
    assert rs_updates(h) == {old["metadata"]["name"]: 2}


async def test_scaling_a_steady_deployment_resizes_its_replicaset() -> None:
    d = deployment("web", LABELS, 5, generation=2)
    rs = rs_for(d, 3, desired=3)
    h, c = setup(d, rs)
    await c.sync("default/web")
    (update,) = h.client.bodies("update", "replicasets")
    assert update["spec"]["replicas"] == 5
    assert update["metadata"]["annotations"][util.DESIRED_REPLICAS] == "5"
    assert update["metadata"]["annotations"][util.MAX_REPLICAS] == "7"  # 25% of 5 -> 2
    assert h.events() == [("ScalingReplicaSet", f"Scaled up replica set "
                                                f"{rs['metadata']['name']} from 3 to 5")]


async def test_scaling_mid_rollout_is_proportional() -> None:
    d = deployment("web", LABELS, 20, image="v2", generation=3,
                   status={"replicas": 11})
    # rolling from 10 to ... with maxSurge 25%: old 8, new 3 at desired 10 (max 13)
    old = rs_for(d, 8, image="v1", revision=1, desired=10)
    new_rs = rs_for(d, 3, image="v2", revision=2, created=10, desired=10, available=0)
    h, c = setup(d, old, new_rs)
    await c.sync("default/web")
    sizes = rs_updates(h)
    # allowed 25, have 11 -> add 14: old 8*25/13=15.4 -> +7, new 3*25/13=5.8 -> +3, leftover 4
    assert sizes == {old["metadata"]["name"]: 19, new_rs["metadata"]["name"]: 6}
    assert sum(sizes.values()) == 25


async def test_recreate_scales_old_down_then_waits_for_its_pods_then_creates() -> None:
    strategy = {"type": "Recreate"}
    d = deployment("db", LABELS, 2, image="v2", strategy=strategy, generation=2)
    old = rs_for(d, 2, image="v1", revision=1)
    old_pods = tuple(pod(f"old-{i}", {**LABELS, util.HASH_LABEL: "x"}, owner=old,
                         phase="Running") for i in range(2))
    h, c = setup(d, old, pods=old_pods)
    await c.sync("default/db")
    assert rs_updates(h) == {old["metadata"]["name"]: 0}
    assert h.client.bodies("create", "replicasets") == []

    emptied = rs_for(d, 0, image="v1", revision=1, status_replicas=0)
    h, c = setup(d, emptied, pods=old_pods[:1])  # one old pod still there
    await c.sync("default/db")
    assert h.client.bodies("create", "replicasets") == []

    h, c = setup(d, emptied)
    await c.sync("default/db")
    (new,) = h.client.bodies("create", "replicasets")
    assert new["spec"]["replicas"] == 2


async def test_rollback_restamps_the_old_replicaset_with_the_next_revision() -> None:
    d = deployment("web", LABELS, 2, image="v1", generation=3)
    d["metadata"]["annotations"] = {util.REVISION: "2"}
    old_v1 = rs_for(d, 0, image="v1", revision=1, status_replicas=0)
    cur_v2 = rs_for(d, 2, image="v2", revision=2, created=10)
    h, c = setup(d, old_v1, cur_v2)
    await c.sync("default/web")
    update = h.client.bodies("update", "replicasets")[0]
    assert update["metadata"]["name"] == old_v1["metadata"]["name"]
    assert update["metadata"]["annotations"][util.REVISION] == "3"
    assert update["metadata"]["annotations"][util.REVISION_HISTORY] == "1"


async def test_old_empty_replicasets_beyond_the_history_limit_are_deleted() -> None:
    d = deployment("web", LABELS, 1, image="v4", revision_history_limit=1, status={
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1})
    d["metadata"]["annotations"] = {util.REVISION: "4"}
    olds = [rs_for(d, 0, image=f"v{i}", revision=i, created=i, status_replicas=0)
            for i in (1, 2, 3)]
    current = rs_for(d, 1, image="v4", revision=4, created=4)
    h, c = setup(d, *olds, current)
    await c.sync("default/web")
    deleted = [n for v, r, n in h.client.actions() if v == "delete"]
    assert deleted == [olds[0]["metadata"]["name"], olds[1]["metadata"]["name"]]


async def test_no_progress_past_the_deadline_is_progress_deadline_exceeded() -> None:
    d = deployment("web", LABELS, 1, image="v2", generation=2, progress_deadline=60)
    old = rs_for(d, 0, image="v1", revision=1, status_replicas=0)
    new_rs = rs_for(d, 1, image="v2", revision=2, created=10, available=0)
    d["metadata"]["annotations"] = {util.REVISION: "2"}
    d["status"] = {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                   "unavailableReplicas": 1, "conditions": [
                       {"type": "Available", "status": "False",
                        "reason": "MinimumReplicasUnavailable", "message": "x",
                        "lastUpdateTime": stamp(), "lastTransitionTime": stamp()},
                       {"type": "Progressing", "status": "True",
                        "reason": "ReplicaSetUpdated", "message": "x",
                        "lastUpdateTime": stamp(), "lastTransitionTime": stamp()}]}
    h, c = setup(d, old, new_rs)
    await c.sync("default/web")
    assert status_writes(h) == []  # within the deadline: nothing new, re-checked later
    assert len(c.queue._timers) == 1
    await c.queue.shut_down()

    h, c = setup(d, old, new_rs)
    h.clock[0] += timedelta(seconds=61)
    await c.sync("default/web")
    progressing = condition(status_writes(h)[-1], "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False",
                                                              "ProgressDeadlineExceeded")
    assert progressing["message"] == f'ReplicaSet "{new_rs["metadata"]["name"]}" has timed ' \
                                     "out progressing."


async def test_a_paused_deployment_does_not_roll_but_still_scales() -> None:
    d = deployment("web", LABELS, 3, image="v2", paused=True, generation=3)
    old = rs_for(d, 2, image="v1", desired=2)
    h, c = setup(d, old)
    await c.sync("default/web")
    assert h.client.bodies("create", "replicasets") == []
    assert rs_updates(h) == {old["metadata"]["name"]: 3}
    assert condition(status_writes(h)[0], "Progressing")["reason"] == "DeploymentPaused"


async def test_a_hash_collision_bumps_collision_count() -> None:
    d = deployment("web", LABELS, 1, image="v2")
    pod_hash = util.compute_hash(d["spec"]["template"], None)
    squatter = rs_for(d, 0, image="v9")
    squatter["metadata"]["name"] = f"web-{pod_hash}"
    h, c = setup(d, squatter)  # in the API and the cache, with another template
    try:
        await c.sync("default/web")
    except errors.AlreadyExists:
        pass
    assert status_writes(h)[-1]["collisionCount"] == 1
    assert util.compute_hash(d["spec"]["template"], 1) != pod_hash


async def test_orphan_replicasets_are_adopted() -> None:
    d = deployment("web", LABELS, 1)
    rs = rs_for(d, 1)
    rs["metadata"]["ownerReferences"] = []
    h, c = setup(d, rs)
    await c.sync("default/web")
    (patch,) = h.client.bodies("patch", "replicasets")
    assert patch["metadata"]["ownerReferences"][0]["uid"] == "uid-web"


async def test_an_empty_selector_is_reported_not_acted_on() -> None:
    d = deployment("web", LABELS, 1, generation=2)
    d["spec"]["selector"] = {}
    h, c = setup(d)
    await c.sync("default/web")
    assert h.events()[0][0] == "SelectingAll"
    assert h.client.bodies("create", "replicasets") == []
    assert status_writes(h) == [{"observedGeneration": 2}]


async def test_an_invalid_surge_is_an_event_not_a_crash() -> None:
    d = deployment("web", LABELS, 1, strategy={"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": "lots", "maxUnavailable": 0}})
    h, c = setup(d)
    await c.sync("default/web")
    assert h.events()[-1][0] == "InvalidSpec"


async def test_rs_events_map_to_the_owning_deployment() -> None:
    d = deployment("web", LABELS, 1)
    rs = rs_for(d, 1)
    h, c = setup(d, rs)
    c._add_rs(rs)
    assert await c.queue.get() == "default/web"
    c.queue.done("default/web")
    orphan = rs_for(d, 1, image="other")
    orphan["metadata"]["ownerReferences"] = []
    c._add_rs(orphan)
    assert await c.queue.get() == "default/web"
