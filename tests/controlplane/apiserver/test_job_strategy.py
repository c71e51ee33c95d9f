"""The batch/v1 strategies: Job defaults and generated selector, CronJob schedule checks."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.apiserver.registry.strategy_apps import CronJobStrategy, JobStrategy

Object = dict[str, Any]
UID = "7d3a3a4e-0000-4000-8000-000000000001"


def created_job(**spec: Any) -> Object:
    obj: Object = {"metadata": {"name": "pi", "namespace": "default", "uid": UID}, "spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox"}]}}, **spec}}
    strategy = JobStrategy()
    strategy.default(obj)
    strategy.prepare_for_create(obj)
    return obj


def test_selector_and_labels_are_generated_from_the_uid() -> None:
    obj = created_job()
    spec = obj["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": UID, "controller-uid": UID,
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}
    assert JobStrategy().validate(obj) == []


def test_manual_selector_is_left_alone_and_must_match() -> None:
    obj = created_job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    causes = JobStrategy().validate(obj)
    assert any("`selector` does not match template `labels`" in c.message for c in causes)


@pytest.mark.parametrize(("spec", "completions", "parallelism"), [
    ({}, 1, 1), ({"parallelism": 3}, None, 3), ({"completions": 4}, 4, 1),
    ({"completions": 4, "parallelism": 2}, 4, 2)])
def test_completions_default_to_one_only_without_parallelism(
        spec: Object, completions: int | None, parallelism: int) -> None:
    obj = created_job(**spec)
    assert obj["spec"].get("completions") == completions
    assert obj["spec"]["parallelism"] == parallelism
    assert obj["spec"]["backoffLimit"] == 6
    assert obj["spec"]["completionMode"] == "NonIndexed"


def test_bad_job_specs_are_invalid() -> None:
    causes = JobStrategy().validate(created_job(parallelism=-1, completionMode="Indexed",
                                                completions=None, activeDeadlineSeconds=0))
    fields = {c.field for c in causes}
    assert {"spec.parallelism", "spec.activeDeadlineSeconds", "spec.completions"} <= fields


def test_the_selector_is_immutable() -> None:
    old = created_job()
    new = created_job()
    new["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}}
    assert any(c.field == "spec.selector" for c in JobStrategy().validate_update(new, old))


def cron(schedule: str, **spec: Any) -> Object:
    obj: Object = {"metadata": {"name": "c"}, "spec": {"schedule": schedule, "jobTemplate": {
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox"}]}}}}, **spec}}
    CronJobStrategy().default(obj)
    return obj


@pytest.mark.parametrize(("schedule", "spec", "field", "message"), [
    ("TZ=UTC * * * * *", {}, "spec.schedule",
     "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ("CRON_TZ=UTC 0 * * * *", {}, "spec.schedule", "cannot use TZ or CRON_TZ"),
    ("* * *", {}, "spec.schedule", "expected exactly 5 fields, found 3"),
    ("* * * * *", {"timeZone": "Mars/Base"}, "spec.timeZone", "unknown time zone Mars/Base"),
    ("* * * * *", {"timeZone": "Local"}, "spec.timeZone", "explicit time zone"),
])
def test_cronjob_schedule_checks(schedule: str, spec: Object, field: str, message: str) -> None:
    causes = CronJobStrategy().validate(cron(schedule, **spec))
    assert [c.field for c in causes] == [field]
    assert message in causes[0].message


def test_good_cronjobs_pass() -> None:
    for schedule in ("*/5 * * * *", "@hourly", "0 9 * * MON-FRI"):
        assert CronJobStrategy().validate(cron(schedule, timeZone="Europe/Berlin")) == []
