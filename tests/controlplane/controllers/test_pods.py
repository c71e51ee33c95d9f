"""Pod predicates and the order in which a ReplicaSet picks pods to delete."""

from __future__ import annotations

from datetime import timedelta

from controlplane.controllers import pods as podutil
from controlplane.controllers.testing import NOW, pod

LABELS = {"app": "web"}


def names(pods: list[dict]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_deletion_order_follows_kubernetes_ranks() -> None:
    pods = [
        pod("ready-old", LABELS, phase="Running", ready=True, node="n1", created=1,
            ready_since=1),
        pod("ready-new", LABELS, phase="Running", ready=True, node="n2", created=2,
            ready_since=2),
        pod("running-not-ready", LABELS, phase="Running", node="n3"),
        pod("pending", LABELS, node="n4"),
        pod("unscheduled", LABELS),
    ]
    assert names(podutil.deletion_order(pods)) == [
        "unscheduled", "pending", "running-not-ready", "ready-new", "ready-old"]


def test_doubled_up_nodes_and_deletion_cost_come_before_age() -> None:
    a = pod("alone", LABELS, phase="Running", ready=True, node="n1", created=5, ready_since=5)
    b = pod("crowded", LABELS, phase="Running", ready=True, node="n2", created=1, ready_since=1)
    sibling = pod("sibling", LABELS, phase="Running", ready=True, node="n2")
    assert names(podutil.deletion_order([a, b], related=[sibling])) == ["crowded", "alone"]
    b["metadata"]["annotations"] = {podutil.DELETION_COST: "100"}
    assert names(podutil.deletion_order([a, b], related=[sibling])) == ["alone", "crowded"]


def test_availability_waits_min_ready_seconds_from_the_ready_transition() -> None:
    p = pod("p", LABELS, phase="Running", ready=True, ready_since=0)
    assert podutil.is_available(p, 0, NOW)
    assert not podutil.is_available(p, 10, NOW + timedelta(seconds=5))
    assert podutil.is_available(p, 10, NOW + timedelta(seconds=11))
    assert not podutil.is_available(pod("q", LABELS), 0, NOW)


def test_pod_from_template_copies_labels_annotations_and_spec() -> None:
    template = {"metadata": {"labels": LABELS, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
    ref = {"kind": "ReplicaSet", "name": "web", "uid": "u", "controller": True}
    made = podutil.pod_from_template(template, "web", ref)
    assert made["metadata"] == {"generateName": "web-", "labels": LABELS,
                                "annotations": {"a": "b"}, "ownerReferences": [ref]}
    made["spec"]["containers"][0]["image"] = "changed"
    assert template["spec"]["containers"][0]["image"] == "i"


def test_created_at_is_posix_seconds_and_the_oldest_when_unset_or_bad() -> None:
    assert podutil.created_at(pod("p", {}, created=5)) == NOW.timestamp() + 5
    assert podutil.created_at({"metadata": {}}) == 0.0
    assert podutil.created_at({"metadata": {"creationTimestamp": "yesterday"}}) == 0.0
