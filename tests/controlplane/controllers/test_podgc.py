"""Pod GC: given pods, nodes and a clock, expect these status patches and forced deletes."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.client.rest import NODES, PODS
from controlplane.controllers.podgc import (
    PodGCController,
    Quarantine,
    missing_nodes,
    terminated_to_delete,
    unscheduled_terminating,
    with_condition,
)
from controlplane.controllers.testing import Harness, harness, pod

Object = dict[str, Any]


def p(name: str, phase: str = "Running", *, node: str = "n1", created: int = 0,
      reason: str = "", deleting: bool = False) -> Object:
    obj = pod(name, {"app": "x"}, phase=phase, node=node, created=created, deleting=deleting)
    if reason:
        obj["status"]["reason"] = reason
    return obj


def names(pods: list[Object]) -> list[str]:
    return [x["metadata"]["name"] for x in pods]


@pytest.mark.parametrize(("pods", "threshold", "expected"), [
    ([p("a", "Succeeded"), p("b", "Failed")], 2, []),
    ([p("a", "Succeeded", created=3), p("b", "Failed", created=1), p("c", "Succeeded",
                                                                    created=2)], 1, ["b", "c"]),
    ([p("old", "Succeeded", created=1), p("evicted", "Failed", created=9, reason="Evicted")],
     1, ["evicted"]),  # evicted pods go first
    ([p("x", "Succeeded", created=1), p("a", "Succeeded", created=1)], 1, ["a"]),  # by name
    ([p("run"), p("pending", "Pending"), p("unknown", "Unknown"), p("s", "Succeeded")], 0, []),
    ([p("run"), p("s", "Succeeded")], 0, []),  # 0 turns it off
])
def test_terminated_to_delete(pods: list[Object], threshold: int, expected: list[str]) -> None:
    assert names(terminated_to_delete(pods, threshold)) == expected


def test_missing_nodes_and_unscheduled_terminating() -> None:
    pods = [p("a", node="n1"), p("b", node="gone"), p("c", node=""),
            p("d", node="", deleting=True)]
    assert missing_nodes(pods, {"n1"}) == {"gone"}
    assert names(unscheduled_terminating(pods)) == ["d"]


def test_quarantine_waits_its_period_and_forgets_nodes_seen_again() -> None:
    now = [0.0]
    q = Quarantine(40.0, clock=lambda: now[0])
    assert q.due({"gone"}) == []
    now[0] = 39.0
    assert q.due({"gone", "late"}) == []
    now[0] = 40.0
    assert q.due({"gone", "late"}) == ["gone"]
    assert q.due(set()) == []
    assert q.due({"gone"}) == []  # it came back meanwhile: a fresh quarantine


def test_with_condition_replaces_by_type() -> None:
    status = {"conditions": [{"type": "Ready", "status": "True"},
                             {"type": "DisruptionTarget", "status": "True",
                              "lastTransitionTime": "then"}]}
    out = with_condition(status, {"type": "DisruptionTarget", "status": "True"}, "now")
    assert out == [{"type": "Ready", "status": "True"},
                   {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": "then"}]


def setup(pods: list[Object], nodes: list[str], **options: Any) -> tuple[Harness, Any]:
    h = harness()
    h.cache(PODS, *pods)
    h.cache(NODES, *[{"metadata": {"name": n}} for n in nodes])
    ctx = h.context()
    ctx.options.update(options)
    return h, PodGCController(ctx)


async def test_orphans_are_failed_and_force_deleted_once_the_node_is_confirmed_gone() -> None:
    orphan = p("orphan", node="gone", deleting=True)
    done = p("done", "Succeeded", node="gone")
    h, c = setup([orphan, done, p("fine", node="n1")], ["n1"], pod_gc_quarantine=0.0)
    await c.gc()
    assert h.client.actions(reads=True) == [
        ("get", "nodes", "gone"),
        ("patch", "pods/status", "orphan"), ("delete", "pods", "orphan"),
        ("delete", "pods", "done")]
    status = h.client.bodies("patch", "pods/status")[0]["status"]
    assert status["phase"] == "Failed"
    (cond,) = status["conditions"]
    assert cond["reason"] == "DeletionByPodGC" and cond["message"] == (
        "PodGC: node no longer exists")


async def test_a_node_the_cache_lacks_but_the_api_has_is_left_alone() -> None:
    h, c = setup([p("a", node="late")], [], pod_gc_quarantine=0.0)
    h.client.seed(NODES, {"metadata": {"name": "late"}})
    await c.gc()
    assert h.client.actions() == []


async def test_orphans_wait_for_the_quarantine() -> None:
    h, c = setup([p("a", node="gone")], [])
    await c.gc()
    assert h.client.actions(reads=True) == []


async def test_terminated_beyond_threshold_and_unscheduled_terminating_pods_go() -> None:
    pods = [p("s1", "Succeeded", created=1), p("s2", "Succeeded", created=2),
            p("stuck", "Pending", node="", deleting=True)]
    h, c = setup(pods, ["n1"], terminated_pod_gc_threshold=1)
    await c.gc()
    assert sorted(h.client.actions()) == [
        ("delete", "pods", "s1"), ("delete", "pods", "stuck"), ("patch", "pods/status", "stuck")]
