"""One scheduling profile: run the plugins over a snapshot and pick a node, or explain why not.

The cycle is Kubernetes' schedulePod: PreFilter (may narrow the nodes or reject), Filter over the
nodes starting where the last cycle stopped until enough feasible ones are found (all of them
below 100 nodes, then Kubernetes' adaptive percentage), PreScore/Score/NormalizeScore per plugin,
the weighted sum, and the highest total (ties broken at random). A failure runs the preemption
dry run for the message and raises `FitError`. Pure and synchronous: it reads, never writes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from controlplane.scheduler import preemption
from controlplane.scheduler.messages import Diagnosis, FitError, NoNodesAvailable
from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.plugin import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
)
from controlplane.scheduler.podinfo import PodInfo

MIN_FEASIBLE_NODES = 100
MIN_FEASIBLE_PERCENTAGE = 5


class PluginError(Exception):
    """A plugin failed (an Error status or an invalid score); the pod is retried with backoff."""


@dataclass
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int


def nodes_to_find(total: int, percentage: int) -> int:
    """numFeasibleNodesToFind: every node in small clusters, an adaptive share in big ones."""
    if total < MIN_FEASIBLE_NODES:
        return total
    if percentage <= 0:
        percentage = max(50 - total // 125, MIN_FEASIBLE_PERCENTAGE)
    return max(total * percentage // 100, MIN_FEASIBLE_NODES)


class Profile:
    """A scheduler name with its ordered filters and weighted scores."""

    def __init__(self, scheduler_name: str, filters: list[FilterPlugin],
                 scores: list[tuple[ScorePlugin, int]], *, preemption: bool = True,
                 percentage_of_nodes_to_score: int = 0, rng: random.Random | None = None) -> None:
        self.scheduler_name = scheduler_name
        self.filters = filters
        self.scores = scores
        self.preemption = preemption
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.next_start = 0  # where the next Filter pass begins (spreads the search)

    def __repr__(self) -> str:
        return (f"<Profile {self.scheduler_name} filters={[p.name for p in self.filters]} "
                f"scores={[(p.name, w) for p, w in self.scores]}>")

    @property
    def plugins(self) -> dict[str, FilterPlugin | ScorePlugin]:
        found: dict[str, FilterPlugin | ScorePlugin] = {p.name: p for p in self.filters}
        found.update((p.name, p) for p, _ in self.scores)
        return found

    def schedule(self, pod: PodInfo, snapshot: Snapshot) -> ScheduleResult:
        """Pick a node for `pod`; raise FitError, NoNodesAvailable or PluginError."""
        if not snapshot.nodes:
            raise NoNodesAvailable()
        state = CycleState()
        diagnosis = Diagnosis(len(snapshot.nodes))
        nodes = self.pre_filter(state, pod, snapshot, diagnosis)
        feasible = self.find_feasible(state, pod, nodes, diagnosis)
        if not feasible:
            if self.preemption:
                diagnosis.post_filter_message = preemption.post_filter_message(
                    self, pod, snapshot, diagnosis)
            raise FitError(diagnosis)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, len(diagnosis.statuses) + 1, 1)
        totals = self.score(state, pod, snapshot, feasible)
        best = max(totals)
        winners = [n for n, total in zip(feasible, totals, strict=True) if total == best]
        chosen = winners[0] if len(winners) == 1 else self.rng.choice(winners)
        return ScheduleResult(chosen.name, len(diagnosis.statuses) + len(feasible), len(feasible))

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                   diagnosis: Diagnosis) -> list[NodeInfo]:
        """Run every PreFilter; return the nodes left to filter (or raise FitError)."""
        allowed: set[str] | None = None
        narrowing: list[str] = []
        for plugin in self.filters:
            status, names = plugin.pre_filter(state, pod, snapshot)
            if status is not None and status.code == Code.SKIP:
                state.skip_filter.add(plugin.name)
            elif status is not None:
                self._reject_all(plugin.name, status, diagnosis, pod, snapshot)
            if names is not None:
                narrowing.append(plugin.name)
                allowed = set(names) if allowed is None else allowed & names
                if not allowed:
                    message = (f"node(s) didn't satisfy plugin {narrowing[0]}"
                               if len(narrowing) == 1 else
                               f"node(s) didn't satisfy plugin(s) [{' '.join(narrowing)}] "
                               "simultaneously")
                    self._reject_all(plugin.name, Status.unresolvable(message), diagnosis, pod,
                                     snapshot)
        if allowed is None:
            return snapshot.nodes
        diagnosis.absent = Status.unresolvable(
            f"node(s) didn't satisfy plugin(s) [{' '.join(sorted(narrowing))}]")
        return [n for n in snapshot.nodes if n.name in allowed]

    def _reject_all(self, plugin: str, status: Status, diagnosis: Diagnosis, pod: PodInfo,
                    snapshot: Snapshot) -> None:
        if status.code == Code.ERROR:
            raise PluginError(f"{plugin}: {status.message}")
        diagnosis.absent = Status(status.code, status.reasons, plugin)
        diagnosis.pre_filter_message = status.message
        diagnosis.unschedulable_plugins.add(plugin)
        if self.preemption:
            diagnosis.post_filter_message = preemption.post_filter_message(
                self, pod, snapshot, diagnosis)
        raise FitError(diagnosis)

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo,
                    active: list[FilterPlugin] | None = None) -> Status | None:
        """The first rejection among the filters for this node (None: the node fits)."""
        if active is None:
            active = [p for p in self.filters if p.name not in state.skip_filter]
        for plugin in active:
            status = plugin.filter(state, pod, node)
            if status is not None and status.code != Code.SUCCESS:
                if status.code == Code.ERROR:
                    raise PluginError(f"{plugin.name}: {status.message}")
                return Status(status.code, status.reasons, plugin.name)
        return None

    def find_feasible(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                      diagnosis: Diagnosis) -> list[NodeInfo]:
        """Filter nodes from `next_start` on until `wanted` fit; record why the others do not.

        Nodes go through the filters in chunks of as many as are still wanted, each plugin over
        the chunk's survivors in turn (one call per plugin and chunk, not per node): the same
        nodes, in the same order, meet the same first rejection as node by node, and the pass
        never runs past the node that completes the wanted count.
        """
        if not nodes:
            return []
        wanted = nodes_to_find(len(nodes), self.percentage)
        feasible: list[NodeInfo] = []
        start = self.next_start % len(nodes)
        ordered = nodes[start:] + nodes[:start]
        processed = 0
        active = [p for p in self.filters if p.name not in state.skip_filter]
        while processed < len(ordered) and len(feasible) < wanted:
            chunk = ordered[processed:processed + wanted - len(feasible)]
            processed += len(chunk)
            for plugin in active:
                if not chunk:
                    break
                statuses = plugin.filter_nodes(state, pod, chunk)
                if not any(statuses):
                    continue  # every node passed (the usual case): the chunk stays as it is
                survivors = []
                for node, status in zip(chunk, statuses, strict=True):
                    if status is None or status.code == Code.SUCCESS:
                        survivors.append(node)
                        continue
                    if status.code == Code.ERROR:
                        raise PluginError(f"{plugin.name}: {status.message}")
                    diagnosis.statuses[node.name] = Status(status.code, status.reasons,
                                                           plugin.name)
                    diagnosis.unschedulable_plugins.add(plugin.name)
                chunk = survivors
            feasible.extend(chunk)
        self.next_start = (start + processed) % len(nodes)
        return feasible

    def score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
              nodes: list[NodeInfo]) -> list[int]:
        """The weighted sum of every score plugin, per node (same order as `nodes`)."""
        totals = [0] * len(nodes)
        for plugin, weight in self.scores:
            status = plugin.pre_score(state, pod, snapshot, nodes)
            if status is not None and status.code == Code.SKIP:
                continue
            if status is not None and status.code != Code.SUCCESS:
                raise PluginError(f"{plugin.name}: {status.message}")
            raw = plugin.score_nodes(state, pod, nodes)
            normalized = plugin.normalize(state, pod, raw)
            for i, value in enumerate(normalized):
                if not 0 <= value <= MAX_NODE_SCORE:
                    raise PluginError(f"plugin {plugin.name} returned an invalid score {value} "
                                      f"for node {nodes[i].name}")
                totals[i] += value * weight
        return totals
