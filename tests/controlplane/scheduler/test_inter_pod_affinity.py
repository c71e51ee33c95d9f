"""InterPodAffinity: required (anti-)affinity as a filter, preferred terms as a score."""

from __future__ import annotations

from typing import Any

from controlplane.scheduler.nodeinfo import Snapshot
from controlplane.scheduler.plugin import SKIP, Code, CycleState, Status
from controlplane.scheduler.plugins.inter_pod_affinity import (
    AFFINITY_REASON,
    ANTI_AFFINITY_REASON,
    EXISTING_ANTI_AFFINITY_REASON,
    InterPodAffinity,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.testing import make_node, make_pod, node_info, snapshot

ZONE = "topology.kubernetes.io/zone"


def term(labels: dict[str, str], key: str = ZONE, **extra: Any) -> dict:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def required(kind: str, *terms: dict) -> dict:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(kind: str, *weighted: tuple[int, dict]) -> dict:
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": w, "podAffinityTerm": t} for w, t in weighted]}}


def cluster(*extra_pods: dict) -> Snapshot:
    """Zone a: n1, n2; zone b: n3. A web pod runs on n1."""
    nodes = {name: make_node(name, labels={ZONE: zone})
             for name, zone in (("n1", "a"), ("n2", "a"), ("n3", "b"))}
    pods: dict[str, list[dict]] = {"n1": [make_pod("web", labels={"app": "web"},
                                                   node_name="n1")], "n2": [], "n3": []}
    for pod in extra_pods:
        pods[pod["spec"]["nodeName"]].append(pod)
    return snapshot(*(node_info(nodes[n], *pods[n]) for n in ("n1", "n2", "n3")),
                    namespaces={"default": {"team": "a"}, "other": {"team": "b"}})


def filter_all(pod: dict, snap: Snapshot) -> dict[str, Status | None]:
    plugin, state, info = InterPodAffinity(), CycleState(), PodInfo(pod)
    status, _ = plugin.pre_filter(state, info, snap)
    if status is not None:
        return {n.name: status for n in snap.nodes}
    single = {n.name: plugin.filter(state, info, n) for n in snap.nodes}
    batch = plugin.filter_nodes(state, info, snap.nodes)
    assert dict(zip(single, batch, strict=True)) == single  # the batch agrees
    return single


def test_required_affinity_follows_the_topology() -> None:
    pod = make_pod("p", affinity=required("podAffinity", term({"app": "web"})))
    got = filter_all(pod, cluster())
    assert got["n1"] is None and got["n2"] is None
    assert got["n3"] == Status(Code.UNRESOLVABLE, (AFFINITY_REASON,))


def test_first_pod_of_a_self_affine_group_goes_anywhere_with_the_key() -> None:
    pod = make_pod("p", labels={"app": "cache"},
                   affinity=required("podAffinity", term({"app": "cache"})))
    assert all(s is None for s in filter_all(pod, cluster()).values())
    lacking = make_pod("p", labels={"app": "cache"},
                       affinity=required("podAffinity", term({"app": "cache"}, key="rack")))
    assert all(s == Status.unresolvable(AFFINITY_REASON)
               for s in filter_all(lacking, cluster()).values())


def test_required_anti_affinity() -> None:
    pod = make_pod("p", affinity=required("podAntiAffinity", term({"app": "web"})))
    got = filter_all(pod, cluster())
    assert got["n1"] == got["n2"] == Status.unschedulable(ANTI_AFFINITY_REASON)
    assert got["n3"] is None


def test_existing_pods_anti_affinity_protects_them() -> None:
    guard = make_pod("guard", node_name="n3", affinity=required(
        "podAntiAffinity", term({"app": "intruder"}, key="kubernetes.io/hostname")))
    got = filter_all(make_pod("p", labels={"app": "intruder"}), cluster(guard))
    assert got["n3"] == Status.unschedulable(EXISTING_ANTI_AFFINITY_REASON)
    assert got["n1"] is None
    plugin = InterPodAffinity()
    assert plugin.pre_filter(CycleState(), PodInfo(make_pod("q")), cluster(guard)) == (SKIP,
                                                                                       None)


def test_namespaces_and_namespace_selector() -> None:
    elsewhere = make_pod("db", "other", labels={"app": "db"}, node_name="n3")
    own_ns = make_pod("p", affinity=required("podAffinity", term({"app": "db"})))
    assert filter_all(own_ns, cluster(elsewhere))["n3"] is not None  # other namespace
    listed = make_pod("p", affinity=required("podAffinity",
                                             term({"app": "db"}, namespaces=["other"])))
    assert filter_all(listed, cluster(elsewhere))["n3"] is None
    by_label = make_pod("p", affinity=required("podAffinity", term(
        {"app": "db"}, namespaceSelector={"matchLabels": {"team": "b"}})))
    got = filter_all(by_label, cluster(elsewhere))
    assert got["n3"] is None and got["n1"] is not None
    everywhere = make_pod("p", affinity=required("podAffinity", term(
        {"app": "db"}, namespaceSelector={})))
    assert filter_all(everywhere, cluster(elsewhere))["n3"] is None


def test_unparsable_terms_reject_the_pod() -> None:
    bad = make_pod("p", affinity=required("podAffinity", {
        "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]},
        "topologyKey": ZONE}))
    got = filter_all(bad, cluster())
    assert all(s is not None and s.code == Code.UNRESOLVABLE
               and s.reasons[0].startswith("parsing pod:") for s in got.values())


def scores(pod: dict, snap: Snapshot, **args: Any) -> dict[str, int] | None:
    plugin, state, info = InterPodAffinity(args), CycleState(), PodInfo(pod)
    if plugin.pre_score(state, info, snap, snap.nodes) == SKIP:
        return None
    raw = [plugin.score(state, info, n) for n in snap.nodes]
    return dict(zip([n.name for n in snap.nodes], plugin.normalize(state, info, raw),
                    strict=True))


def test_preferred_affinity_and_anti_affinity_scores() -> None:
    near = make_pod("p", affinity=preferred("podAffinity", (10, term({"app": "web"}))))
    assert scores(near, cluster()) == {"n1": 100, "n2": 100, "n3": 0}
    far = make_pod("p", affinity=preferred("podAntiAffinity", (10, term({"app": "web"}))))
    assert scores(far, cluster()) == {"n1": 0, "n2": 0, "n3": 100}
    assert scores(make_pod("p"), cluster()) is None  # nothing to weigh


def test_existing_pods_terms_attract_the_incoming_pod() -> None:
    friendly = make_pod("f", node_name="n3", affinity=required(
        "podAffinity", term({"app": "newcomer"})))
    got = scores(make_pod("p", labels={"app": "newcomer"}), cluster(friendly))
    assert got == {"n1": 0, "n2": 0, "n3": 100}
    assert scores(make_pod("p", labels={"app": "newcomer"}), cluster(friendly),
                  hardPodAffinityWeight=0) is None
    assert scores(make_pod("p", labels={"app": "newcomer"}), cluster(friendly),
                  ignorePreferredTermsOfExistingPods=True) is None


