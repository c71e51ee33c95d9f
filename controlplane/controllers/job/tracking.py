"""Counting finished pods exactly once, with the `batch.kubernetes.io/job-tracking` finalizer.

Every pod a Job creates carries the finalizer, so it cannot vanish before it is counted. A sync
(1) adds the uids of finished pods that still hold the finalizer to
status.uncountedTerminatedPods and writes that, (2) removes those pods' finalizers, (3) moves
the uids whose finalizer is gone from the uncounted lists into status.succeeded/failed. A crash
between steps loses nothing (the uids are recorded before any finalizer goes) and counts
nothing twice (a pod without the finalizer is never added again). `in_flight` holds uids whose
finalizer this controller removed but whose update the pod cache has not shown yet. Pure.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from controlplane.controllers.job import indexes, logic

Object = dict[str, Any]


@dataclass
class Tracking:
    """The uncounted lists after adding newly finished pods, and what to finalize."""

    succeeded: list[str]  # uncounted uids
    failed: list[str]
    completed_indexes: set[int]
    changed: bool = False  # the uncounted lists (or completed indexes) grew: write them first
    to_finalize: list[Object] = field(default_factory=list)  # pods whose finalizer goes


def plan(job: Object, pods: list[Object], in_flight: Collection[str]) -> Tracking:
    """Record the finished pods still holding the finalizer (pods of a finished Job are only
    finalized, never counted again)."""
    status = job.get("status") or {}
    uncounted = status.get("uncountedTerminatedPods") or {}
    succeeded = list(uncounted.get("succeeded") or [])
    failed = list(uncounted.get("failed") or [])
    total = logic.completions(job) or 0
    completed = indexes.parse(status.get("completedIndexes"), total)
    tracking = Tracking(succeeded, failed, set(completed))
    finished_job = logic.is_finished(job)
    for pod in pods:
        uid = str(pod["metadata"].get("uid"))
        if not logic.has_finalizer(pod) or uid in in_flight:
            continue
        if finished_job:
            tracking.to_finalize.append(pod)
            continue
        if logic.is_succeeded(pod):
            if uid not in succeeded:
                succeeded.append(uid)
                tracking.changed = True
            index = indexes.index_of(pod)
            if logic.is_indexed(job) and index is not None and index < total:
                if index not in tracking.completed_indexes:
                    tracking.completed_indexes.add(index)
                    tracking.changed = True
            tracking.to_finalize.append(pod)
        elif logic.is_failed(pod):
            if uid not in failed:
                failed.append(uid)
                tracking.changed = True
            tracking.to_finalize.append(pod)
    return tracking


def settle(tracking: Tracking, still_held: Collection[str]) -> tuple[int, int]:
    """Drop from the uncounted lists every uid whose finalizer is gone (all but `still_held`);
    return how many succeeded and failed pods that counts."""
    done_ok = [u for u in tracking.succeeded if u not in still_held]
    done_failed = [u for u in tracking.failed if u not in still_held]
    tracking.succeeded = [u for u in tracking.succeeded if u in still_held]
    tracking.failed = [u for u in tracking.failed if u in still_held]
    return len(done_ok), len(done_failed)
