"""Container garbage collection planning: which dead containers and sandboxes to remove, in order.

Pure functions over plain records (the kubelet's kuberuntime_gc.go, over what the CRI lists):
- evictable containers are the ones not running, created at least the policy's minimum age ago,
  grouped in evict units: (pod uid, container name);
- every evictable container of a pod that no longer exists on the node goes, oldest first;
- each unit keeps its `max_per_pod_container` newest (the default 1 keeps the last run, which
  `kubectl logs --previous` shows: the one before the running instance, or, in
  CrashLoopBackOff, the newest, exited, instance; see agent/server/containers.py), then, over a
  `max_containers` global limit, every unit keeps an equal share (at least 1) and the oldest
  of the rest go;
- sandboxes that are not ready and have no container left go when their pod no longer exists;
  of a pod that exists, all but the newest sandbox go when they are not ready and empty;
- a pod log directory (`<namespace>_<name>_<uid>`) goes once its pod is gone from the node.
One rule is our own: the newest container of each container of a pod that exists is never
removed, whatever the limits, because the agent reads the restart count and the terminated state
from it (the kubelet keeps those in its status cache; we rebuild status from the runtime).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agent import labels
from agent.gc.policy import GCPolicy
from cri.v1 import api_pb2 as api

PodExists = Callable[[str], bool]
Unit = tuple[str, str]  # (pod uid, container name)


@dataclass(frozen=True)
class ContainerRecord:
    id: str
    uid: str  # the pod's
    name: str  # the container's name in the pod spec
    sandbox_id: str
    created_at: int  # nanoseconds since the epoch, as the CRI reports it
    attempt: int  # the restart count
    running: bool


@dataclass(frozen=True)
class SandboxRecord:
    id: str
    uid: str
    ready: bool
    created_at: int


@dataclass
class ContainerGCPlan:
    containers: list[str] = field(default_factory=list)  # ids, in removal order
    sandboxes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.containers or self.sandboxes)


def container_record(c: api.Container) -> ContainerRecord:
    return ContainerRecord(id=c.id, uid=c.labels.get(labels.POD_UID, ""),
                           name=c.labels.get(labels.CONTAINER_NAME, c.metadata.name),
                           sandbox_id=c.pod_sandbox_id, created_at=c.created_at,
                           attempt=c.metadata.attempt, running=c.state == api.CONTAINER_RUNNING)


def sandbox_record(s: api.PodSandbox) -> SandboxRecord:
    return SandboxRecord(id=s.id, uid=s.labels.get(labels.POD_UID, s.metadata.uid),
                         ready=s.state == api.SANDBOX_READY, created_at=s.created_at)


def _newest_first(containers: Iterable[ContainerRecord]) -> list[ContainerRecord]:
    return sorted(containers, key=lambda c: (c.created_at, c.attempt, c.id), reverse=True)


class _Remover:
    """Collects removals in order; never removes a protected container."""

    def __init__(self, protected: set[str]) -> None:
        self.protected = protected
        self.removed: list[str] = []

    def oldest(self, unit: list[ContainerRecord], count: int) -> list[ContainerRecord]:
        """Remove the `count` oldest of `unit` (newest first); return what is kept."""
        keep = max(0, len(unit) - count)
        kept = unit[:keep]
        for container in reversed(unit[keep:]):
            if container.id in self.protected:
                kept.append(container)
            else:
                self.removed.append(container.id)
        return _newest_first(kept)


def plan_containers(containers: Sequence[ContainerRecord], sandboxes: Sequence[SandboxRecord], *,
                    pod_exists: PodExists, policy: GCPolicy, now: int) -> ContainerGCPlan:
    """What one container GC pass removes (`now` in nanoseconds)."""
    newest_gc_time = now - int(policy.min_container_age * 1e9)
    by_unit: dict[Unit, list[ContainerRecord]] = defaultdict(list)
    for c in containers:
        by_unit[(c.uid, c.name)].append(c)
    protected = {max(cs, key=lambda c: (c.attempt, c.created_at, c.id)).id
                 for (uid, _), cs in by_unit.items() if pod_exists(uid)}
    remover = _Remover(protected)
    units: dict[Unit, list[ContainerRecord]] = {}
    for key, cs in by_unit.items():
        evictable = [c for c in cs if not c.running and c.created_at <= newest_gc_time]
        if evictable:
            units[key] = _newest_first(evictable)
    for key in [k for k in units if not pod_exists(k[0])]:
        gone = units.pop(key)
        remover.oldest(gone, len(gone))
    if policy.max_per_pod_container >= 0:
        for key, unit in units.items():
            units[key] = remover.oldest(unit, len(unit) - policy.max_per_pod_container)
    total = sum(len(u) for u in units.values())
    if policy.max_containers >= 0 and total > policy.max_containers:
        share = max(1, policy.max_containers // len(units))
        for key, unit in units.items():
            units[key] = remover.oldest(unit, len(unit) - share)
        total = sum(len(u) for u in units.values())
        if total > policy.max_containers:
            flattened = _newest_first(c for u in units.values() for c in u)
            remover.oldest(flattened, total - policy.max_containers)
    return ContainerGCPlan(remover.removed,
                           plan_sandboxes(containers, sandboxes, set(remover.removed),
                                          pod_exists=pod_exists))


def plan_sandboxes(containers: Sequence[ContainerRecord], sandboxes: Sequence[SandboxRecord],
                   removed: set[str], *, pod_exists: PodExists) -> list[str]:
    """Sandboxes to remove, given the containers that remain after `removed` are gone."""
    in_use = {c.sandbox_id for c in containers if c.id not in removed}
    by_pod: dict[str, list[SandboxRecord]] = defaultdict(list)
    for s in sandboxes:
        by_pod[s.uid].append(s)
    result: list[str] = []
    for uid, pod_sandboxes in by_pod.items():
        ordered = sorted(pod_sandboxes, key=lambda s: (s.created_at, s.id), reverse=True)
        keep = 1 if pod_exists(uid) else 0  # the newest of a pod that exists, whatever its state
        for sandbox in reversed(ordered[keep:]):
            if not sandbox.ready and sandbox.id not in in_use:
                result.append(sandbox.id)
    return result


def pod_uid_of_log_dir(name: str) -> str:
    """The pod uid in a pod log directory's name, `<namespace>_<name>_<uid>`."""
    return name.rsplit("_", 1)[-1] if name.count("_") >= 2 else ""


def stale_log_dirs(names: Iterable[str], *, pod_exists: PodExists,
                   runtime_uids: set[str]) -> list[str]:
    """Pod log directories to remove: their pod is gone and the runtime holds nothing of it."""
    result = []
    for name in sorted(names):
        uid = pod_uid_of_log_dir(name)
        if uid and not pod_exists(uid) and uid not in runtime_uids:
            result.append(name)
    return result
