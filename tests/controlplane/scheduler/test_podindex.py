"""The pod index: placed pods by label and by affinity term, as the cache keeps them."""

from __future__ import annotations

from controlplane.api.selectors import LabelSelector
from controlplane.scheduler.cache import Cache
from controlplane.scheduler.podindex import (
    PREFERRED_AFFINITY,
    REQUIRED_ANTI_AFFINITY,
    PodIndex,
)
from controlplane.scheduler.podinfo import PodInfo
from controlplane.scheduler.testing import make_node, make_pod

ANTI = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"labelSelector": {"matchLabels": {"app": "web"}},
     "topologyKey": "kubernetes.io/hostname"}]}}


def names(entries: object) -> list[tuple[str, str]]:
    return sorted((pod.name, node) for pod, node in entries)  # type: ignore[attr-defined]


def selector(**match: str) -> LabelSelector:
    return LabelSelector.from_object({"matchLabels": match})


def test_candidates_come_from_the_most_selective_label() -> None:
    index = PodIndex()
    for i in range(5):
        index.add(PodInfo(make_pod(f"web{i}", labels={"app": "web", "tier": "front"})), "a")
    index.add(PodInfo(make_pod("db", labels={"app": "db", "tier": "front"})), "b")
    assert names(index.candidates(selector(app="db", tier="front"))) == [("db", "b")]
    assert len(list(index.candidates(selector(tier="front")))) == 6
    exists = LabelSelector.from_object({"matchExpressions": [
        {"key": "app", "operator": "Exists"}]})
    assert len(list(index.candidates(exists))) == 6  # no equality: every pod
    assert list(index.candidates(LabelSelector.from_object(None))) == []  # selects nothing
    assert names(index.matching(selector(app="web", tier="back"))) == []
    within = LabelSelector.from_object({"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["db", "cache"]}]})
    assert names(index.matching(within)) == [("db", "b")]


def test_terms_count_pods_per_node_and_follow_moves_and_removals() -> None:
    index = PodIndex()
    for name, node in (("w1", "a"), ("w2", "a"), ("w3", "b")):
        index.add(PodInfo(make_pod(name, labels={"app": "web"}, affinity=ANTI)), node)
    [(term, per_node)] = index.terms(REQUIRED_ANTI_AFFINITY)
    assert term.topology_key == "kubernetes.io/hostname"
    assert dict(per_node) == {"a": 2, "b": 1}
    assert list(index.terms(PREFERRED_AFFINITY)) == []
    index.add(PodInfo(make_pod("w1", labels={"app": "web"}, affinity=ANTI)), "b")  # moved
    assert dict(next(iter(index.terms(REQUIRED_ANTI_AFFINITY)))[1]) == {"a": 1, "b": 2}
    for name in ("w1", "w2", "w3"):
        index.remove(f"default/{name}")
    assert list(index.terms(REQUIRED_ANTI_AFFINITY)) == [] and len(index) == 0
    assert list(index.candidates(selector(app="web"))) == []


def test_the_cache_keeps_its_index_with_its_nodes() -> None:
    cache = Cache()
    cache.set_node(make_node("a"))
    cache.add_pod(make_pod("bound", labels={"app": "x"}, node_name="a"))
    cache.assume(PodInfo(make_pod("assumed", labels={"app": "x"})), "a")
    assert names(cache.snapshot().index.matching(selector(app="x"))) == [
        ("assumed", "a"), ("bound", "a")]
    cache.forget("default/assumed")
    cache.remove_pod("default/bound")
    assert len(cache.index) == 0
    # A snapshot made from nodes alone (tests, preemption) indexes their pods itself.
    info = cache.nodes["a"]
    cache.add_pod(make_pod("again", labels={"app": "x"}, node_name="a"))
    assert names(cache.snapshot().with_node(info.clone()).index.matching(
        selector(app="x"))) == [("again", "a")]
