"""Indexed Jobs: completion indexes of pods and the `status.completedIndexes` text ("1,3-5").

An Indexed Job's pod carries its index in the `batch.kubernetes.io/job-completion-index`
annotation (and label), and each container sees it as JOB_COMPLETION_INDEX through the
downward API. A Job is done when every index in [0, completions) has a succeeded pod. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Object = dict[str, Any]
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"


def index_of(pod: Object) -> int | None:
    """The pod's completion index, or None when it has none (or a bad one)."""
    m = pod.get("metadata") or {}
    raw = (m.get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        raw = (m.get("labels") or {}).get(COMPLETION_INDEX)
    if raw is None or not str(raw).isdigit():
        return None
    return int(raw)


def parse(text: str | None, completions: int) -> set[int]:
    """The indexes `status.completedIndexes` lists (those within [0, completions))."""
    found: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            continue
        found.update(range(int(first), int(last or first) + 1))
    return {i for i in found if 0 <= i < completions}


def format_indexes(indexes: Iterable[int]) -> str:
    """Sorted indexes as intervals: {0, 1, 2, 5} -> "0-2,5"."""
    ordered = sorted(set(indexes))
    parts: list[str] = []
    start = prev = None
    for i in ordered:
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            parts.append(_interval(start, prev))
            start = prev = i
    if start is not None:
        parts.append(_interval(start, prev))
    return ",".join(parts)


def _interval(start: int, end: int | None) -> str:
    return str(start) if end is None or end == start else f"{start}-{end}"


def to_create(completions: int, completed: set[int], active: set[int], count: int) -> list[int]:
    """The `count` lowest indexes neither completed nor running."""
    out: list[int] = []
    for i in range(completions):
        if len(out) >= count:
            break
        if i not in completed and i not in active:
            out.append(i)
    return out


def decorate(pod: Object, job_name: str, index: int) -> None:
    """Make a pod from the template the pod of `index` (name, annotation, label, env, host)."""
    m = pod["metadata"]
    m["generateName"] = f"{job_name}-{index}-"
    m.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
    m.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
    spec = pod["spec"]
    spec.setdefault("hostname", f"{job_name}-{index}")
    env = {"name": INDEX_ENV, "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        existing = [e for e in container.get("env") or [] if e.get("name") != INDEX_ENV]
        container["env"] = [*existing, dict(env)]
