"""Job arithmetic, indexes and tracking: pure functions on table-driven cases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from controlplane.controllers.job import indexes, logic, tracking
from controlplane.controllers.testing import NOW, stamp

Object = dict[str, Any]


def job(**spec: Any) -> Object:
    return {"metadata": {"name": "j"}, "spec": spec, "status": {}}


def pod(uid: str, phase: str, *, finished: int = 0, finalizer: bool = True,
        deleting: bool = False, index: int | None = None) -> Object:
    meta: Object = {"name": uid, "uid": uid, "creationTimestamp": stamp()}
    if finalizer:
        meta["finalizers"] = [logic.FINALIZER]
    if deleting:
        meta["deletionTimestamp"] = stamp(finished)
    if index is not None:
        meta["annotations"] = {indexes.COMPLETION_INDEX: str(index)}
    status: Object = {"phase": phase}
    if phase in ("Succeeded", "Failed"):
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": stamp(finished)}}}]
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(("spec", "succeeded", "active", "want"), [
    ({"parallelism": 2, "completions": 4}, 0, 0, 2),
    ({"parallelism": 2, "completions": 4}, 3, 1, 1),
    ({"parallelism": 5, "completions": 4}, 1, 0, 3),
    ({"parallelism": 2, "completions": 4}, 4, 0, 0),
    ({"parallelism": 3}, 0, 1, 3),  # work queue
    ({"parallelism": 3}, 1, 2, 2),  # work queue after a success: no new pods
    ({"parallelism": 0, "completions": 1}, 0, 0, 0),
])
def test_want_active(spec: Object, succeeded: int, active: int, want: int) -> None:
    assert logic.want_active(job(**spec), succeeded, active) == want


@pytest.mark.parametrize(("pods", "at", "remaining"), [
    ([], 0, 0.0),
    ([pod("a", "Failed")], 4, 6.0),  # 10 s after one failure
    ([pod("a", "Failed"), pod("b", "Failed", finished=10)], 12, 18.0),  # 20 s after two
    ([pod("a", "Failed"), pod("b", "Succeeded", finished=5)], 6, 0.0),  # a success resets
    ([pod(str(i), "Failed") for i in range(12)], 0, 360.0),  # capped at 6 minutes
    ([pod("a", "Failed")], 30, 0.0),
])
def test_backoff(pods: list[Object], at: int, remaining: float) -> None:
    assert logic.backoff_remaining(pods, NOW + timedelta(seconds=at)) == remaining


def test_pod_states() -> None:
    deleting = pod("d", "Running", deleting=True)
    assert logic.is_failed(deleting) and logic.is_terminating(deleting)
    assert not logic.is_active(deleting)
    assert not logic.is_failed(pod("s", "Succeeded", deleting=True))
    assert logic.is_active(pod("r", "Pending"))


def test_finish_prefers_failure_and_knows_deadlines() -> None:
    j = job(completions=2, backoffLimit=1, activeDeadlineSeconds=10)
    j["status"]["startTime"] = stamp()
    args: Any = {"succeeded": 2, "completed_indexes": set(), "active": 0, "active_pods": []}
    assert logic.finish_of(j, failed=2, now=NOW, **args) is logic.BACKOFF_LIMIT
    assert logic.finish_of(j, failed=0, now=NOW + timedelta(seconds=10),
                           **args) is logic.DEADLINE
    assert logic.finish_of(j, failed=0, now=NOW, **args) is logic.COMPLETED
    assert logic.past_deadline(j, NOW + timedelta(seconds=4)) == (False, 6.0)
    on_failure = job(backoffLimit=2, template={"spec": {"restartPolicy": "OnFailure"}})
    crashing = {"metadata": {}, "status": {"phase": "Running", "containerStatuses": [
        {"restartCount": 2}]}}
    assert logic.exceeds_backoff(on_failure, 0, [crashing])


@pytest.mark.parametrize(("text", "values"), [
    ("", set()), ("0", {0}), ("0-2,5", {0, 1, 2, 5}), ("1,3-4,9", {1, 3, 4}), ("x,2", {2})])
def test_completed_indexes_parse(text: str, values: set[int]) -> None:
    assert indexes.parse(text, 5 if "9" in text else 10) == values


@pytest.mark.parametrize(("values", "text"), [
    (set(), ""), ({0}, "0"), ({0, 1, 2, 5}, "0-2,5"), ({4, 1, 3}, "1,3-4")])
def test_completed_indexes_format(values: set[int], text: str) -> None:
    assert indexes.format_indexes(values) == text


def test_indexes_to_create_are_the_lowest_free_ones() -> None:
    assert indexes.to_create(5, {0, 2}, {1}, 2) == [3, 4]
    assert indexes.to_create(3, set(), set(), 5) == [0, 1, 2]


def test_tracking_records_each_finished_pod_once() -> None:
    j = job(completions=3)
    j["status"]["uncountedTerminatedPods"] = {"failed": ["f0"]}
    pods = [pod("s1", "Succeeded"), pod("f1", "Failed"), pod("f0", "Failed"),
            pod("s2", "Succeeded", finalizer=False), pod("r", "Running"),
            pod("s3", "Succeeded")]
    plan = tracking.plan(j, pods, in_flight={"s3"})
    assert plan.changed
    assert plan.succeeded == ["s1"] and plan.failed == ["f0", "f1"]
    assert [p["metadata"]["uid"] for p in plan.to_finalize] == ["s1", "f1", "f0"]
    assert tracking.settle(plan, still_held={"f1"}) == (1, 1)
    assert plan.succeeded == [] and plan.failed == ["f1"]


def test_tracking_of_an_indexed_job_fills_completed_indexes() -> None:
    j = job(completions=3, completionMode="Indexed")
    j["status"]["completedIndexes"] = "0"
    plan = tracking.plan(j, [pod("a", "Succeeded", index=2), pod("b", "Succeeded", index=7)],
                         in_flight=set())
    assert plan.completed_indexes == {0, 2}


def test_a_finished_job_only_finalizes() -> None:
    j = job(completions=1)
    j["status"]["conditions"] = [{"type": "Failed", "status": "True"}]
    plan = tracking.plan(j, [pod("a", "Succeeded")], in_flight=set())
    assert not plan.changed and plan.succeeded == [] and len(plan.to_finalize) == 1
