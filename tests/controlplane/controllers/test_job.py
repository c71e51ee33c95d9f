"""Job controller: given these caches (and a fake clock), expect these API calls."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from controlplane.client.rest import JOBS, PODS
from controlplane.controllers.job import JobController
from controlplane.controllers.job.logic import FINALIZER
from controlplane.controllers.testing import Harness, build, harness, stamp

Object = dict[str, Any]
UID_LABELS = {"batch.kubernetes.io/controller-uid": "uid-pi", "controller-uid": "uid-pi",
              "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}


def job(*, completions: int | None = 1, parallelism: int = 1, backoff: int = 6,
        status: Object | None = None, **spec: Any) -> Object:
    body: Object = {"parallelism": parallelism, "backoffLimit": backoff,
                    "completionMode": "NonIndexed", "suspend": False,
                    "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-pi"}},
                    "template": {"metadata": {"labels": dict(UID_LABELS)},
                                 "spec": {"restartPolicy": "Never", "containers": [
                                     {"name": "c", "image": "busybox"}]}}, **spec}
    if completions is not None:
        body["completions"] = completions
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": "uid-pi",
                         "resourceVersion": "5", "creationTimestamp": stamp()},
            "spec": body, "status": dict(status or {})}


def pod(name: str, phase: str = "Running", *, finalizer: bool = True, finished: int = 0,
        deleting: bool = False, ready: bool = False, index: int | None = None,
        uid: str = "uid-pi") -> Object:
    meta: Object = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                    "labels": dict(UID_LABELS, **{"batch.kubernetes.io/controller-uid": uid}),
                    "resourceVersion": "1", "creationTimestamp": stamp(),
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                         "uid": uid, "controller": True,
                                         "blockOwnerDeletion": True}]}
    if finalizer:
        meta["finalizers"] = [FINALIZER]
    if deleting:
        meta["deletionTimestamp"] = stamp(30)
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    status: Object = {"phase": phase}
    if phase in ("Succeeded", "Failed"):
        status["containerStatuses"] = [{"name": "c", "state": {"terminated": {
            "exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": stamp(finished)}}}]
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": status}


def setup(j: Object, *pods: Object) -> tuple[Harness, Any]:
    h = harness()
    h.cache(JOBS, j)
    h.cache(PODS, *pods)
    return h, build(h, JobController)


def last_status(h: Harness) -> Object:
    status: Object = h.client.bodies("update", "jobs/status")[-1]["status"]
    return status


async def test_creates_parallelism_pods_with_labels_finalizer_and_owner() -> None:
    h, c = setup(job(completions=4, parallelism=2))
    await c.sync("default/pi")
    creates = h.client.bodies("create", "pods")
    assert len(creates) == 2
    for body in creates:
        m = body["metadata"]
        assert m["generateName"] == "pi-"
        assert m["labels"] == UID_LABELS
        assert m["finalizers"] == [FINALIZER]
        assert m["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                         "uid": "uid-pi", "controller": True,
                                         "blockOwnerDeletion": True}]
    assert [r for r, _ in h.events()] == ["SuccessfulCreate"] * 2
    status = last_status(h)
    assert status["startTime"] == stamp() and status["active"] == 2
    assert status["ready"] == 0 and status["terminating"] == 0
    assert status["uncountedTerminatedPods"] == {}
    # a slow watch: the cache still shows no pods, expectations stop a second create
    await c.sync("default/pi")
    assert len(h.client.bodies("create", "pods")) == 2


async def test_succeeded_pods_are_recorded_uncounted_then_finalized_then_counted() -> None:
    h, c = setup(job(completions=4, parallelism=2, status={"startTime": stamp()}),
                 pod("a", "Succeeded"), pod("b", ready=True))
    await c.sync("default/pi")
    actions = h.client.actions()
    assert actions[0] == ("update", "jobs/status", "pi")
    assert actions[1] == ("patch", "pods", "a")
    first = h.client.bodies("update", "jobs/status")[0]["status"]
    assert first["uncountedTerminatedPods"] == {"succeeded": ["uid-a"]}
    patch = h.client.bodies("patch", "pods")[0]
    assert patch == {"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER],
                                  "uid": "uid-a"}}
    assert ("create", "pods", "pi-00001") in actions  # 3 left, 2 at a time, 1 running
    final = last_status(h)
    assert final["succeeded"] == 1 and final["uncountedTerminatedPods"] == {}
    assert final["active"] == 2 and final["ready"] == 1
    # the pod cache still shows the finalizer (in flight): never counted twice
    c.expectations.delete("default/pi")
    h.cache(JOBS, dict(job(completions=4, parallelism=2), status=final))
    await c.sync("default/pi")
    assert last_status(h)["succeeded"] == 1


async def test_a_failed_finalizer_removal_keeps_the_pod_uncounted() -> None:
    from controlplane.api import errors
    h, c = setup(job(status={"startTime": stamp()}), pod("a", "Failed"))
    h.client.fail[("patch", "pods")] = errors.Conflict("busy")
    await c.sync("default/pi")
    final = last_status(h)
    assert final["uncountedTerminatedPods"] == {"failed": ["uid-a"]}
    assert "failed" not in final


async def test_completions_reached_completes_with_interim_condition_and_event() -> None:
    h, c = setup(job(completions=2, parallelism=2,
                     status={"startTime": stamp(), "succeeded": 1}),
                 pod("a", "Succeeded", finished=5), pod("b", "Succeeded", finalizer=False))
    h.clock[0] += timedelta(seconds=10)
    await c.sync("default/pi")
    status = last_status(h)
    types = [(x["type"], x["status"], x["reason"]) for x in status["conditions"]]
    assert types == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                     ("Complete", "True", "CompletionsReached")]
    assert status["succeeded"] == 2 and status["completionTime"] == stamp(10)
    assert "active" not in status
    assert ("Completed", "Job completed") in h.events()


async def test_backoff_limit_exceeded_fails_the_job() -> None:
    h, c = setup(job(backoff=1, status={"startTime": stamp(), "failed": 1}),
                 pod("a", "Failed", finalizer=False), pod("b", "Failed", finished=20))
    h.clock[0] += timedelta(seconds=21)
    await c.sync("default/pi")
    status = last_status(h)
    assert status["failed"] == 2
    assert [(x["type"], x["reason"]) for x in status["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")]
    assert ("BackoffLimitExceeded", "Job has reached the specified backoff limit") in h.events()
    assert not h.client.bodies("create", "pods")


async def test_a_failure_delays_the_replacement_by_the_backoff() -> None:
    h, c = setup(job(backoff=6, status={"startTime": stamp(), "failed": 1}),
                 pod("a", "Failed", finalizer=False, finished=0))
    h.clock[0] += timedelta(seconds=4)
    await c.sync("default/pi")
    assert not h.client.bodies("create", "pods")
    timer = c.queue._timers["default/pi"]  # requeued for when the 10 s backoff ends
    assert 5.5 < timer.when() - asyncio.get_running_loop().time() < 6.5
    h.clock[0] += timedelta(seconds=7)  # 11 s after the failure: past the 10 s backoff
    await c.sync("default/pi")
    assert len(h.client.bodies("create", "pods")) == 1


async def test_active_deadline_deletes_active_pods_and_fails_once_they_are_gone() -> None:
    j = job(activeDeadlineSeconds=30, status={"startTime": stamp(), "active": 1})
    h, c = setup(j, pod("a", ready=True))
    h.clock[0] += timedelta(seconds=31)
    await c.sync("default/pi")
    assert ("delete", "pods", "a") in h.client.actions()
    status = last_status(h)
    assert [x["type"] for x in status["conditions"]] == ["FailureTarget"]
    assert status["terminating"] == 1 and "active" not in status
    # the pod is being deleted: counted as failed, then gone; the Job is Failed
    h2, c2 = setup(dict(j, status=status), pod("a", deleting=True))
    h2.clock[0] += timedelta(seconds=32)
    await c2.sync("default/pi")
    assert last_status(h2)["uncountedTerminatedPods"] == {}
    assert last_status(h2)["failed"] == 1
    h3, c3 = setup(dict(j, status=last_status(h2)))
    await c3.sync("default/pi")
    status = last_status(h3)
    assert [(x["type"], x["reason"]) for x in status["conditions"]] == [
        ("FailureTarget", "DeadlineExceeded"), ("Failed", "DeadlineExceeded")]
    assert ("DeadlineExceeded", "Job was active longer than specified deadline") in h3.events()


async def test_suspend_deletes_pods_and_resume_restarts_the_clock() -> None:
    h, c = setup(job(suspend=True, status={"startTime": stamp(), "active": 1}), pod("a"))
    await c.sync("default/pi")
    assert ("delete", "pods", "a") in h.client.actions()
    cond = last_status(h)["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Suspended", "True", "JobSuspended")
    h2, c2 = setup(job(status=last_status(h)))
    h2.clock[0] += timedelta(seconds=60)
    await c2.sync("default/pi")
    status = last_status(h2)
    assert status["conditions"][0]["reason"] == "JobResumed"
    assert status["startTime"] == stamp(60)
    assert len(h2.client.bodies("create", "pods")) == 1


async def test_work_queue_completes_when_a_pod_succeeded_and_none_runs() -> None:
    h, c = setup(job(completions=None, parallelism=3, status={"startTime": stamp()}),
                 pod("a", "Succeeded"), pod("b", "Running"))
    await c.sync("default/pi")
    assert not h.client.bodies("create", "pods")  # no new pods after a success
    assert "conditions" not in last_status(h)
    h2, c2 = setup(job(completions=None, parallelism=3,
                       status={"startTime": stamp(), "succeeded": 1}),
                   pod("a", "Succeeded", finalizer=False), pod("b", "Succeeded"))
    await c2.sync("default/pi")
    assert [x["type"] for x in last_status(h2)["conditions"]] == ["SuccessCriteriaMet",
                                                                  "Complete"]


async def test_indexed_job_creates_missing_indexes_and_tracks_completed_ones() -> None:
    j = job(completions=3, parallelism=3, completionMode="Indexed",
            status={"startTime": stamp()})
    h, c = setup(j, pod("a", "Succeeded", index=1), pod("b", index=0))
    await c.sync("default/pi")
    created = h.client.bodies("create", "pods")
    assert len(created) == 1
    m = created[0]["metadata"]
    assert m["generateName"] == "pi-2-"
    assert m["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert m["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    env = created[0]["spec"]["containers"][0]["env"]
    assert env == [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    assert created[0]["spec"]["hostname"] == "pi-2"
    status = last_status(h)
    assert status["completedIndexes"] == "1" and status["succeeded"] == 1


async def test_finished_job_and_deleted_job_release_pod_finalizers() -> None:
    done = job(status={"conditions": [{"type": "Complete", "status": "True"}]})
    h, c = setup(done, pod("a", "Succeeded"))
    await c.sync("default/pi")
    assert h.client.actions() == [("patch", "pods", "a")]
    h2 = harness()
    h2.cache(PODS, pod("orphan", "Running", deleting=True))
    c2 = build(h2, JobController)
    await c2.sync("default/pi")
    assert h2.client.actions() == [("patch", "pods", "orphan")]
    # a pod of an older Job of the same name is released too
    h3, c3 = setup(job(status={"startTime": stamp()}), pod("old", "Succeeded", uid="uid-old"))
    await c3.sync("default/pi")
    assert ("patch", "pods", "old") in h3.client.actions()


async def test_handlers_map_pods_to_their_job_and_orphans_to_its_key() -> None:
    h, c = setup(job())
    c.expectations.expect_creations("default/pi", 1)
    c._add_pod(pod("a"))
    assert list(c.queue._queue) == ["default/pi"]
    assert c.expectations.satisfied("default/pi")
    h2 = harness()
    c2 = build(h2, JobController)
    c2._pod_changed(pod("orphan"))  # no Job in the cache: its key is queued for cleanup
    assert list(c2.queue._queue) == ["default/pi"]
    c2.in_flight["default/pi"] = {"uid-orphan"}
    c2._pod_changed(pod("orphan", finalizer=False))
    assert c2.in_flight["default/pi"] == set()
