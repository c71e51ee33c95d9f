"""The plugin vocabulary: status codes, per-cycle state, and the extension points a plugin fills.

Mirrors the Kubernetes scheduling framework in miniature. A plugin is pure: it reads the pod, the
snapshot and the NodeInfo it is given, keeps what it computed for this cycle in `CycleState`, and
returns a `Status` (None meaning success). `UNSCHEDULABLE` says preemption might help on that
node, `UNRESOLVABLE` (UnschedulableAndUnresolvable) says it cannot. `events` names the cluster
changes that may make a pod this plugin rejected schedulable (the queue's requeue hints).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot
from controlplane.scheduler.podinfo import PodInfo

T = TypeVar("T")
MAX_NODE_SCORE = 100

# Cluster events (what changed), as the queue's move requests name them.
NODE_ADD = "NodeAdd"
NODE_DELETE = "NodeDelete"
NODE_LABEL = "NodeUpdate/Label"
NODE_TAINT = "NodeUpdate/Taint"
NODE_ALLOCATABLE = "NodeUpdate/Allocatable"
NODE_CONDITION = "NodeUpdate/Condition"
NODE_UNSCHEDULABLE = "NodeUpdate/Unschedulable"
NODE_IMAGES = "NodeUpdate/Images"
POD_ADD = "AssignedPodAdd"
POD_UPDATE = "AssignedPodUpdate"
POD_DELETE = "AssignedPodDelete"
NAMESPACE_CHANGE = "NamespaceChange"
WORKLOAD_CHANGE = "WorkloadChange"  # services and replica sets (default spreading selectors)
UNSCHEDULED_POD_CHANGE = "UnscheduledPodUpdate"
ALL_NODE_UPDATES = frozenset({NODE_LABEL, NODE_TAINT, NODE_ALLOCATABLE, NODE_CONDITION,
                              NODE_UNSCHEDULABLE, NODE_IMAGES})


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNRESOLVABLE = 3  # UnschedulableAndUnresolvable
    SKIP = 5


@dataclass(frozen=True)
class Status:
    """The outcome of one plugin at one extension point, with its human-readable reasons."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNRESOLVABLE, reasons)

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)


SKIP = Status(Code.SKIP)


class CycleState:
    """What plugins computed for the pod being scheduled, by key; thrown away after the cycle."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def read(self, key: str, kind: type[T]) -> T:
        value = self._data.get(key)
        if not isinstance(value, kind):
            raise KeyError(f"cycle state has no {kind.__name__} under {key!r}")
        return value


class Plugin:
    """Base of every plugin: a name, its requeue events, and optional arguments."""

    name = ""
    events: frozenset[str] = frozenset()

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        self.args = dict(args or {})

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class FilterPlugin(Plugin):
    """PreFilter + Filter: may the pod run on this node at all?"""

    def pre_filter(self, state: CycleState, pod: PodInfo,
                   snapshot: Snapshot) -> tuple[Status | None, set[str] | None]:
        """Compute per-cycle state; optionally narrow the nodes (a set of names) or reject."""
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        raise NotImplementedError

    def filter_nodes(self, state: CycleState, pod: PodInfo,
                     nodes: list[NodeInfo]) -> list[Status | None]:
        """`filter` for each node, in order (plugins on the hot path do it in one loop)."""
        return [self.filter(state, pod, node) for node in nodes]


class ScorePlugin(Plugin):
    """PreScore + Score + NormalizeScore: how good is this feasible node (0-100 after norm.)?"""

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        raise NotImplementedError

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """`score` for each node, in order (plugins on the hot path do it in one loop)."""
        return [self.score(state, pod, node) for node in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> list[int]:
        return scores


def default_normalize(scores: list[int], *, reverse: bool = False) -> list[int]:
    """helper.DefaultNormalizeScore: scale to 0-100 by the maximum (optionally reversed)."""
    highest = max(scores, default=0)
    if highest == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    scaled = [MAX_NODE_SCORE * s // highest for s in scores]
    return [MAX_NODE_SCORE - s for s in scaled] if reverse else scaled
