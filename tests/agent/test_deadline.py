from __future__ import annotations

from agent.agent import deadline_remaining


def test_deadline_counts_from_start_time() -> None:
    pod = {"spec": {"activeDeadlineSeconds": 30}, "status": {"startTime": "2026-01-01T00:00:00Z"}}
    start = 1767225600.0  # 2026-01-01T00:00:00Z
    assert deadline_remaining(pod, start + 10) == 20
    assert deadline_remaining(pod, start + 31) == -1


def test_no_deadline_or_not_started_is_none() -> None:
    assert deadline_remaining({"spec": {}, "status": {"startTime": "x"}}, 0) is None
    assert deadline_remaining({"spec": {"activeDeadlineSeconds": 5}, "status": {}}, 0) is None
