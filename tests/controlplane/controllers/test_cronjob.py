"""CronJob controller: given a CronJob, its Jobs and a fake clock, expect these API calls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.client.rest import CRONJOBS, JOBS
from controlplane.controllers.cronjob import CronJobController, logic
from controlplane.controllers.cronjob.schedule import parse
from controlplane.controllers.testing import NOW, Harness, build, harness, stamp

Object = dict[str, Any]
MINUTE = int(NOW.timestamp()) // 60  # NOW is 12:00:00


def cronjob(schedule: str = "* * * * *", *, status: Object | None = None, created: int = -90,
            **spec: Any) -> Object:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "uid-tick",
                         "resourceVersion": "3", "creationTimestamp": stamp(created)},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {"labels": {"app": "tick"}}, "spec": {
                         "template": {"spec": {"restartPolicy": "Never", "containers": [
                             {"name": "c", "image": "busybox"}]}}}}, **spec},
            "status": dict(status or {})}


def job(name: str, finished: str = "", *, start: int = 0, owner: str = "uid-tick") -> Object:
    status: Object = {"startTime": stamp(start)}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True"}]
        if finished == "Complete":
            status["completionTime"] = stamp(start + 5)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "resourceVersion": "1", "creationTimestamp": stamp(start),
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                              "name": "tick", "uid": owner,
                                              "controller": True}]},
            "spec": {}, "status": status}


def setup(cj: Object, *jobs: Object) -> tuple[Harness, Any]:
    h = harness()
    h.cache(CRONJOBS, cj)
    h.cache(JOBS, *jobs)
    return h, build(h, CronJobController)


def status_patch(h: Harness) -> Object:
    status: Object = h.client.bodies("update", "cronjobs/status")[-1]["status"]
    return status


async def test_creates_the_job_of_the_due_minute_and_requeues_for_the_next() -> None:
    h, c = setup(cronjob())
    await c.sync("default/tick")
    (body,) = h.client.bodies("create", "jobs")
    m = body["metadata"]
    assert m["name"] == f"tick-{MINUTE}"
    assert m["labels"] == {"app": "tick"}
    assert m["annotations"] == {logic.SCHEDULED_TIMESTAMP: "2025-01-01T12:00:00Z"}
    assert m["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob",
                                     "name": "tick", "uid": "uid-tick", "controller": True,
                                     "blockOwnerDeletion": True}]
    assert body["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    status = status_patch(h)
    assert status["lastScheduleTime"] == stamp()
    assert [r["name"] for r in status["active"]] == [f"tick-{MINUTE}"]
    assert ("SuccessfulCreate", f"Created job tick-{MINUTE}") in h.events()
    delay = c.queue._timers["default/tick"].when() - asyncio.get_running_loop().time()
    assert 59.5 < delay < 60.5


async def test_nothing_before_the_first_activation_after_creation() -> None:
    h, c = setup(cronjob("30 * * * *", created=-120))  # created 11:58, first run 12:30
    await c.sync("default/tick")
    assert h.client.bodies("create", "jobs") == []
    h.clock[0] = NOW + timedelta(minutes=30)
    await c.sync("default/tick")
    assert h.client.bodies("create", "jobs")[0]["metadata"]["name"] == f"tick-{MINUTE + 30}"


async def test_an_activation_already_run_is_not_run_again() -> None:
    cj = cronjob(status={"lastScheduleTime": stamp(-60)})
    h, c = setup(cj, job(f"tick-{MINUTE}"))
    await c.sync("default/tick")
    assert h.client.bodies("create", "jobs") == []
    status = status_patch(h)  # a status write lost to a conflict is made good
    assert status["lastScheduleTime"] == stamp()
    assert [r["name"] for r in status["active"]] == [f"tick-{MINUTE}"]


@pytest.mark.parametrize(("policy", "creates", "deletes"), [
    ("Allow", 1, 0), ("Forbid", 0, 0), ("Replace", 1, 1)])
async def test_concurrency_policy(policy: str, creates: int, deletes: int) -> None:
    running = job(f"tick-{MINUTE - 1}", start=-60)
    cj = cronjob(concurrencyPolicy=policy, status={
        "lastScheduleTime": stamp(-60), "active": [logic.job_ref(running)]})
    h, c = setup(cj, running)
    await c.sync("default/tick")
    assert len(h.client.bodies("create", "jobs")) == creates
    assert len([a for a in h.client.actions() if a[0] == "delete"]) == deletes
    if policy == "Forbid":
        assert "JobAlreadyActive" in [r for r, _ in h.events()]


async def test_suspended_cronjobs_create_nothing() -> None:
    h, c = setup(cronjob(suspend=True))
    await c.sync("default/tick")
    assert h.client.bodies("create", "jobs") == []


async def test_starting_deadline_skips_a_missed_activation() -> None:
    h, c = setup(cronjob("0 * * * *", startingDeadlineSeconds=30, created=-7200))
    h.clock[0] = NOW + timedelta(seconds=45)  # 12:00 was due 45 s ago
    await c.sync("default/tick")
    assert h.client.bodies("create", "jobs") == []
    h.clock[0] = NOW + timedelta(seconds=20)
    await c.sync("default/tick")
    assert len(h.client.bodies("create", "jobs")) == 1


async def test_many_missed_activations_warn_and_run_the_latest() -> None:
    h, c = setup(cronjob(created=-3 * 3600))
    await c.sync("default/tick")
    assert "TooManyMissedTimes" in [r for r, _ in h.events()]
    assert h.client.bodies("create", "jobs")[0]["metadata"]["name"] == f"tick-{MINUTE}"


async def test_finished_jobs_leave_active_and_history_is_pruned() -> None:
    done = [job(f"tick-{MINUTE - i}", "Complete", start=-60 * i) for i in range(1, 6)]
    failed = [job(f"tick-{MINUTE - i}", "Failed", start=-60 * i) for i in range(6, 8)]
    cj = cronjob(status={"lastScheduleTime": stamp(), "active": [logic.job_ref(done[0])]})
    h, c = setup(cj, *done, *failed)
    await c.sync("default/tick")
    deleted = [n for v, r, n in h.client.actions() if v == "delete"]
    assert sorted(deleted) == sorted([f"tick-{MINUTE - 5}", f"tick-{MINUTE - 4}",
                                      f"tick-{MINUTE - 7}"])
    status = status_patch(h)
    assert "active" not in status
    assert status["lastSuccessfulTime"] == stamp(-60 + 5)
    assert ("SawCompletedJob", f"Saw completed job: tick-{MINUTE - 1}, status: Complete") in (
        h.events())


async def test_a_bad_schedule_or_time_zone_is_an_event_not_a_crash() -> None:
    h, c = setup(cronjob("61 * * * *"))
    await c.sync("default/tick")
    assert h.events() == [("UnparseableSchedule", 'unparseable schedule: "61 * * * *" : '
                           "end of range (61) above maximum (59): 61")]
    h2, c2 = setup(cronjob(timeZone="Mars/Base"))
    await c2.sync("default/tick")
    assert [r for r, _ in h2.events()] == ["UnknownTimeZone"]
    assert h.client.bodies("create", "jobs") == h2.client.bodies("create", "jobs") == []


async def test_time_zone_shapes_the_annotation() -> None:
    h, c = setup(cronjob("0 13 * * *", timeZone="Europe/Berlin", created=-7200))
    await c.sync("default/tick")  # 12:00 UTC is 13:00 in Berlin
    body = h.client.bodies("create", "jobs")[0]
    assert body["metadata"]["annotations"][logic.SCHEDULED_TIMESTAMP] == (
        "2025-01-01T13:00:00+01:00")


def test_most_recent_time_counts_missed_activations() -> None:
    every = parse("*/10 * * * *")
    got, missed = logic.most_recent_time(every, UTC, NOW - timedelta(minutes=35), NOW)
    assert got == NOW and missed == 4
    got, missed = logic.most_recent_time(every, UTC, NOW + timedelta(minutes=1), NOW)
    assert got is None and missed == 0
    far = datetime(2020, 1, 1, tzinfo=UTC)
    got, missed = logic.most_recent_time(parse("* * * * *"), UTC, far, NOW)
    assert got == NOW and missed == logic.MAX_MISSED + 1
