"""Placed pods indexed for the plugins that look at other pods: by label, and by affinity term.

InterPodAffinity and PodTopologySpread ask "which placed pods does this selector match, and on
which nodes?" and "which placed pods' (anti-)affinity terms match the incoming pod?". Scanning
every pod of every node answers both, at a cost that grows with the cluster's pods for every
pod scheduled. The index answers the first from the pods carrying one of the selector's
`key=value` / `key in (...)` labels (every pod only for selectors without one), and the second
from the distinct terms (replicas of a workload share theirs), each with how many pods on each
node carry it. Kept current by the scheduler cache as pods are placed and removed; built from
the nodes for the snapshots tests and preemption dry runs make. Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from controlplane.api.selectors import DOUBLE_EQUALS, EQUALS, IN, LabelSelector
from controlplane.scheduler.podinfo import AffinityTerm, PodInfo

# Roles of a placed pod's affinity terms.
REQUIRED_ANTI_AFFINITY = "requiredAntiAffinity"
REQUIRED_AFFINITY = "requiredAffinity"
PREFERRED_AFFINITY = "preferredAffinity"
PREFERRED_ANTI_AFFINITY = "preferredAntiAffinity"
ROLES = (REQUIRED_ANTI_AFFINITY, REQUIRED_AFFINITY, PREFERRED_AFFINITY, PREFERRED_ANTI_AFFINITY)
Placed = tuple[PodInfo, str]  # a pod and the node it is bound or assumed to


def _terms(pod: PodInfo) -> Iterator[tuple[str, AffinityTerm]]:
    for role, terms in ((REQUIRED_ANTI_AFFINITY, pod.required_anti_affinity),
                        (REQUIRED_AFFINITY, pod.required_affinity),
                        (PREFERRED_AFFINITY, pod.preferred_affinity),
                        (PREFERRED_ANTI_AFFINITY, pod.preferred_anti_affinity)):
        for term in terms:
            yield role, term


class PodIndex:
    def __init__(self, placed: Iterable[Placed] = ()) -> None:
        self._pods: dict[str, Placed] = {}  # pod key -> (pod, node)
        self._by_label: dict[tuple[str, str], dict[str, Placed]] = {}  # (key, value) -> pods
        # role -> term -> node name -> how many of its pods carry the term
        self._terms: dict[str, dict[AffinityTerm, Counter[str]]] = {r: {} for r in ROLES}
        for pod, node in placed:
            self.add(pod, node)

    def __repr__(self) -> str:
        return (f"<PodIndex pods={len(self._pods)} "
                f"terms={sum(len(t) for t in self._terms.values())}>")

    def __len__(self) -> int:
        return len(self._pods)

    def add(self, pod: PodInfo, node: str) -> None:
        """Index `pod` as placed on `node` (replacing an earlier placement of the same key)."""
        self.remove(pod.key)
        entry = (pod, node)
        self._pods[pod.key] = entry
        for label in pod.labels.items():
            self._by_label.setdefault(label, {})[pod.key] = entry
        for role, term in _terms(pod):
            self._terms[role].setdefault(term, Counter())[node] += 1

    def remove(self, key: str) -> None:
        entry = self._pods.pop(key, None)
        if entry is None:
            return
        pod, node = entry
        for label in pod.labels.items():
            same = self._by_label.get(label)
            if same is not None:
                same.pop(key, None)
                if not same:
                    del self._by_label[label]
        for role, term in _terms(pod):
            counts = self._terms[role].get(term)
            if counts is None:
                continue
            counts[node] -= 1
            if counts[node] <= 0:
                del counts[node]
            if not counts:
                del self._terms[role][term]

    def candidates(self, selector: LabelSelector) -> Iterable[Placed]:
        """A superset of the placed pods `selector` matches (check each with the selector)."""
        if selector.nothing:
            return ()
        best: list[dict[str, Placed]] | None = None
        best_size = 0
        for requirement in selector.requirements:
            if requirement.operator not in (IN, EQUALS, DOUBLE_EQUALS):
                continue
            found = [self._by_label[(requirement.key, value)] for value in requirement.values
                     if (requirement.key, value) in self._by_label]
            size = sum(len(pods) for pods in found)
            if best is None or size < best_size:
                best, best_size = found, size
        if best is None:
            return list(self._pods.values())
        if len(best) == 1:
            return list(best[0].values())
        return [entry for pods in best for entry in pods.values()]

    def matching(self, selector: LabelSelector) -> Iterator[Placed]:
        """The placed pods whose labels `selector` matches, with their nodes."""
        for entry in self.candidates(selector):
            if selector.matches(entry[0].labels):
                yield entry

    def terms(self, role: str) -> Iterable[tuple[AffinityTerm, Counter[str]]]:
        """The distinct terms of placed pods in `role`, each with its pod count per node."""
        return self._terms[role].items()
