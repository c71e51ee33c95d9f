"""PodTopologySpread: DoNotSchedule filter, ScheduleAnyway score, default spreading."""

from __future__ import annotations

from typing import Any

from controlplane.scheduler.nodeinfo import Snapshot
from controlplane.scheduler.plugin import SKIP, CycleState, Status
from controlplane.scheduler.plugins.topology_spread import (
    LABEL_REASON,
    REASON,
    PodTopologySpread,
    default_selector,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.testing import make_node, make_pod, node_info, snapshot

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def spread(key: str, max_skew: int = 1, when: str = "DoNotSchedule", **extra: Any) -> dict:
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}, **extra}


def web(name: str, node: str, **extra: Any) -> dict:
    return make_pod(name, labels={"app": "web"}, node_name=node, **extra)


def cluster(placed: dict[str, int], zones: dict[str, str] | None = None,
            **node_extra: dict[str, str]) -> Snapshot:
    zones = zones or {"n1": "a", "n2": "a", "n3": "b"}
    infos = []
    for name, zone in zones.items():
        labels = {ZONE: zone} if zone else {}
        labels.update(node_extra.get(name, {}))
        pods = [web(f"{name}-{i}", name) for i in range(placed.get(name, 0))]
        infos.append(node_info(make_node(name, labels=labels), *pods))
    return snapshot(*infos)


def filter_all(pod: dict, snap: Snapshot) -> dict[str, Status | None]:
    plugin, state, info = PodTopologySpread(), CycleState(), PodInfo(pod)
    status, _ = plugin.pre_filter(state, info, snap)
    if status == SKIP:
        return {n.name: None for n in snap.nodes}
    return {n.name: plugin.filter(state, info, n) for n in snap.nodes}


def test_zone_skew_filter() -> None:
    pod = make_pod("p", labels={"app": "web"}, topologySpreadConstraints=[spread(ZONE)])
    got = filter_all(pod, cluster({"n1": 1, "n2": 1, "n3": 1}))  # a: 2, b: 1
    assert got == {"n1": Status.unschedulable(REASON), "n2": Status.unschedulable(REASON),
                   "n3": None}
    relaxed = make_pod("p", labels={"app": "web"},
                       topologySpreadConstraints=[spread(ZONE, max_skew=2)])
    assert all(s is None for s in filter_all(relaxed, cluster({"n1": 1, "n2": 1,
                                                                "n3": 1})).values())


def test_pod_not_matching_its_own_selector_does_not_count_itself() -> None:
    pod = make_pod("p", labels={"app": "other"}, topologySpreadConstraints=[spread(ZONE)])
    got = filter_all(pod, cluster({"n1": 1, "n2": 1, "n3": 1}))
    assert got["n1"] is None  # 2 + 0 - 1 = 1 <= maxSkew


def test_missing_topology_label_is_unresolvable() -> None:
    pod = make_pod("p", labels={"app": "web"}, topologySpreadConstraints=[spread(ZONE)])
    got = filter_all(pod, cluster({}, zones={"n1": "a", "n2": ""}))
    assert got["n2"] == Status.unresolvable(LABEL_REASON)
    assert LABEL_REASON == ("node(s) didn't match pod topology spread constraints "
                            "(missing required label)")


def test_min_domains_forces_the_global_minimum_to_zero() -> None:
    pod = make_pod("p", labels={"app": "web"},
                   topologySpreadConstraints=[spread(ZONE, minDomains=3)])
    got = filter_all(pod, cluster({"n1": 1, "n3": 1}))  # two zones < 3: minimum counts as 0
    assert got["n1"] == got["n3"] == Status.unschedulable(REASON)


def test_node_affinity_policy_excludes_domains() -> None:
    zones = {"n1": "a", "n2": "b", "n3": "c"}
    snap = cluster({"n1": 1, "n2": 1}, zones=zones, n3={"pool": "x"})
    pod = make_pod("p", labels={"app": "web"}, nodeSelector={"pool": "x"},
                   topologySpreadConstraints=[spread(ZONE)])
    # Honor: only zone c (0 pods) is a domain, so zones a and b hold no counted pods
    assert filter_all(pod, snap) == {"n1": None, "n2": None, "n3": None}
    ignoring = make_pod("p", labels={"app": "web"}, nodeSelector={"pool": "x"},
                        topologySpreadConstraints=[spread(ZONE, nodeAffinityPolicy="Ignore")])
    got = filter_all(ignoring, snap)  # a: 1, b: 1, c: 0
    assert got["n1"] == got["n2"] == Status.unschedulable(REASON)
    assert got["n3"] is None


def test_match_label_keys_narrow_the_selector() -> None:
    snap = snapshot(node_info(make_node("n1", labels={ZONE: "a"}),
                              web("old", "n1", ), web("old2", "n1")),
                    node_info(make_node("n2", labels={ZONE: "b"})))
    snap.nodes[0].pods["default/old"].labels["rev"] = "1"
    pod = make_pod("p", labels={"app": "web", "rev": "2"},
                   topologySpreadConstraints=[spread(ZONE, matchLabelKeys=["rev"])])
    assert all(s is None for s in filter_all(pod, snap).values())  # no rev=2 pods anywhere


def scores(pod: dict, snap: Snapshot, **args: Any) -> dict[str, int] | None:
    plugin, state, info = PodTopologySpread(args), CycleState(), PodInfo(pod)
    if plugin.pre_score(state, info, snap, snap.nodes) == SKIP:
        return None
    raw = [plugin.score(state, info, n) for n in snap.nodes]
    return dict(zip([n.name for n in snap.nodes], plugin.normalize(state, info, raw),
                    strict=True))


def test_schedule_anyway_prefers_emptier_domains() -> None:
    pod = make_pod("p", labels={"app": "web"},
                   topologySpreadConstraints=[spread(HOST, when="ScheduleAnyway")])
    got = scores(pod, cluster({"n1": 2, "n2": 1}))
    assert got is not None
    assert got["n3"] == 100 and got["n3"] > got["n2"] > got["n1"]


def test_default_spreading_uses_services_and_replica_sets() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": True}
    replica_set = {"metadata": {"name": "web-1", "namespace": "default"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}}}
    service = {"metadata": {"name": "svc", "namespace": "default"},
               "spec": {"selector": {"tier": "front"}}}
    base = cluster({"n1": 2, "n2": 1})
    snap = snapshot(*base.nodes, replica_sets=[replica_set], services=[service])
    pod = make_pod("p", labels={"app": "web", "tier": "front"})
    pod["metadata"]["ownerReferences"] = [owner]
    assert str(default_selector(PodInfo(pod), snap)) == "app=web,tier=front"
    got = scores(pod, snapshot(*base.nodes, replica_sets=[replica_set]))
    assert got is not None and got["n3"] > got["n2"] > got["n1"]
    assert scores(make_pod("lonely", labels={"app": "web"}), base) is None  # no workload
    assert scores(pod, snapshot(*base.nodes, replica_sets=[replica_set]),
                  defaultingType="List") is None


def test_hard_constraints_only_skip_the_score() -> None:
    pod = make_pod("p", labels={"app": "web"}, topologySpreadConstraints=[spread(ZONE)])
    assert scores(pod, cluster({})) is None
