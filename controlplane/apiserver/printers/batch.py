"""Printers for the batch group: jobs (1.32 columns) and cronjobs.

Owns the job STATUS (Complete, Failed, Terminating, Suspended, FailureTarget, else Running,
from the first condition of each type), COMPLETIONS ("1/3", or "0/1 of 4" for a work queue),
and DURATION (start to completion, or to now while running); and the cronjob SCHEDULE,
TIMEZONE, SUSPEND, ACTIVE and LAST SCHEDULE cells. An absent spec.suspend reads as its API
default, false.
"""

from __future__ import annotations

from .common import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    container_cells,
    dig,
    format_label_selector,
    human_duration,
    items,
    name_of,
    number,
    parse_time,
    since,
    template_cells,
    text,
)


def _condition_true(job: Obj, kind: str) -> bool:
    for condition in items(dig(job, "status", "conditions")):
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def job_status(job: Obj) -> str:
    """Summarize a job's conditions into the STATUS column."""
    if _condition_true(job, "Complete"):
        return "Complete"
    if _condition_true(job, "Failed"):
        return "Failed"
    if dig(job, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    if _condition_true(job, "Suspended"):
        return "Suspended"
    if _condition_true(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _completions(job: Obj) -> str:
    succeeded = number(dig(job, "status", "succeeded"))
    completions = dig(job, "spec", "completions")
    if isinstance(completions, int) and not isinstance(completions, bool):
        return f"{succeeded}/{completions}"
    parallelism = number(dig(job, "spec", "parallelism"))
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _duration(job: Obj, ctx: PrintContext) -> str:
    start = parse_time(dig(job, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(dig(job, "status", "completionTime")) or ctx.now
    return human_duration(end - start)


def _job_cells(job: Obj, ctx: PrintContext) -> list[Cell]:
    names, images = template_cells(job)
    return [
        name_of(job),
        job_status(job),
        _completions(job),
        _duration(job, ctx),
        age(job, ctx),
        names,
        images,
        format_label_selector(dig(job, "spec", "selector")),
    ]


def _cronjob_cells(cronjob: Obj, ctx: PrintContext) -> list[Cell]:
    job_spec = dig(cronjob, "spec", "jobTemplate", "spec")
    names, images = container_cells(dig(job_spec, "template", "spec"))
    last = dig(cronjob, "status", "lastScheduleTime")
    return [
        name_of(cronjob),
        text(dig(cronjob, "spec", "schedule")),
        text(dig(cronjob, "spec", "timeZone")) or "<none>",
        "True" if dig(cronjob, "spec", "suspend") is True else "False",
        len(items(dig(cronjob, "status", "active"))),
        "<none>" if last is None else since(last, ctx),
        age(cronjob, ctx),
        names,
        images,
        format_label_selector(dig(job_spec, "selector")),
    ]


_SELECTOR = Column("Selector", priority=1, description="Label selector of the job's pods.")

PRINTERS = {
    ("batch", "jobs"): Printer(
        (
            NAME,
            Column("Status", description="Status of the job."),
            Column("Completions", description="Succeeded pods out of the completions wanted."),
            Column("Duration", description="Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            _SELECTOR,
        ),
        _job_cells,
    ),
    ("batch", "cronjobs"): Printer(
        (
            NAME,
            Column("Schedule", description="The schedule in Cron format."),
            Column("Timezone", description="Time zone the schedule is read in."),
            Column("Suspend", "boolean", description="Whether new runs are suspended."),
            Column("Active", "integer", description="Number of currently running jobs."),
            Column("Last Schedule", description="When a job was last scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            _SELECTOR,
        ),
        _cronjob_cells,
    ),
}
