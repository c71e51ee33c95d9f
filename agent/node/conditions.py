"""Node conditions as the kubelet computes them: pressure from eviction signals, Ready from errors.

Pure: given a `Sample`, the hard eviction thresholds and the runtime's state, return the four
conditions (MemoryPressure, DiskPressure, PIDPressure, Ready: Ready last, as the kubelet keeps
it) with Kubernetes' reasons and messages. lastTransitionTime moves only when a condition's
status flips; lastHeartbeatTime is always "now". Thresholds are the kubelet's `evictionHard`
(defaults: memory.available<100Mi, nodefs.available<10%, nodefs.inodesFree<5%,
imagefs.available<15%, imagefs.inodesFree<5%; pid.available only when configured), and a
pressure condition stays True for `evictionPressureTransitionPeriod` after its signal recovers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.node.machine import Sample
from controlplane.api import quantity

Object = dict[str, Any]

DEFAULT_EVICTION_HARD: Mapping[str, str] = {
    "memory.available": "100Mi",
    "nodefs.available": "10%",
    "nodefs.inodesFree": "5%",
    "imagefs.available": "15%",
    "imagefs.inodesFree": "5%",
}
# Which condition each eviction signal drives.
SIGNAL_CONDITION = {
    "memory.available": "MemoryPressure",
    "nodefs.available": "DiskPressure",
    "nodefs.inodesFree": "DiskPressure",
    "imagefs.available": "DiskPressure",
    "imagefs.inodesFree": "DiskPressure",
    "pid.available": "PIDPressure",
}
# type -> (status True: reason, message), (status False: reason, message)
_PRESSURE_TEXT = {
    "MemoryPressure": (
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available")),
    "DiskPressure": (("KubeletHasDiskPressure", "kubelet has disk pressure"),
                     ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")),
    "PIDPressure": (("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                    ("KubeletHasSufficientPID", "kubelet has sufficient PID available")),
}
PRESSURE_TYPES = tuple(_PRESSURE_TEXT)
CONDITION_TYPES = (*PRESSURE_TYPES, "Ready")


def api_time(t: datetime) -> str:
    """metav1.Time on the wire: RFC 3339 in seconds, UTC."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def threshold_value(spec: str, capacity: int) -> int:
    """The amount a threshold ("100Mi", "10%") stands for on a resource of `capacity`."""
    if spec.endswith("%"):
        return int(capacity * float(spec[:-1]) / 100)
    return quantity.value(spec)


def signals(sample: Sample) -> dict[str, tuple[int, int]]:
    """Each measurable eviction signal as (available, capacity)."""
    out: dict[str, tuple[int, int]] = {
        "memory.available": (sample.memory_available, sample.memory_total)}
    for prefix, fs in (("nodefs", sample.nodefs), ("imagefs", sample.imagefs)):
        if fs is not None:
            out[f"{prefix}.available"] = (fs.available_bytes, fs.capacity_bytes)
            out[f"{prefix}.inodesFree"] = (fs.inodes_free, fs.inodes)
    if sample.pid_max:
        out["pid.available"] = (sample.pid_max - sample.pids_running, sample.pid_max)
    return out


def thresholds_met(sample: Sample, eviction_hard: Mapping[str, str]) -> list[str]:
    """The signals below their hard threshold, as "memory.available<100Mi"."""
    measured = signals(sample)
    met = []
    for signal, spec in eviction_hard.items():
        if signal in measured:
            available, capacity = measured[signal]
            if capacity and available < threshold_value(spec, capacity):
                met.append(f"{signal}<{spec}")
    return met


@dataclass
class PressureTracker:
    """Which pressure conditions hold, with the kubelet's transition period (5 min).

    Owned by the status task: `observe` is called once per status computation.
    """

    transition_period: timedelta = timedelta(minutes=5)
    last_observed: dict[str, datetime] = field(default_factory=dict)  # condition -> when met

    def observe(self, now: datetime, met: Iterable[str]) -> set[str]:
        """Record the thresholds met now; return the pressure conditions to report True."""
        for threshold in met:
            condition = SIGNAL_CONDITION.get(threshold.partition("<")[0])
            if condition:
                self.last_observed[condition] = now
        return {c for c, seen in self.last_observed.items()
                if now - seen < self.transition_period}


def aggregate(messages: Iterable[str]) -> str:
    """Join errors as apimachinery's utilerrors.NewAggregate prints them ("" for none)."""
    unique = list(dict.fromkeys(m for m in messages if m))
    if len(unique) <= 1:
        return unique[0] if unique else ""
    return "[" + ", ".join(unique) + "]"


def _condition(type_: str, status: bool, reason: str, message: str, now: datetime,
               previous: Mapping[str, Object]) -> Object:
    text = "True" if status else "False"
    old = previous.get(type_) or {}
    since = old.get("lastTransitionTime") if old.get("status") == text else None
    return {"type": type_, "status": text, "lastHeartbeatTime": api_time(now),
            "lastTransitionTime": since or api_time(now), "reason": reason, "message": message}


def node_conditions(*, now: datetime, pressure: set[str], ready_errors: list[str],
                    previous: Iterable[Object]) -> list[Object]:
    """The four conditions, given the pressures that hold and what keeps the node from Ready."""
    before = {c.get("type", ""): c for c in previous if isinstance(c, dict)}
    out = []
    for type_, (true_text, false_text) in _PRESSURE_TEXT.items():
        held = type_ in pressure
        reason, message = true_text if held else false_text
        out.append(_condition(type_, held, reason, message, now, before))
    error = aggregate(ready_errors)
    if error:
        out.append(_condition("Ready", False, "KubeletNotReady", error, now, before))
    else:
        out.append(_condition("Ready", True, "KubeletReady", "kubelet is posting ready status",
                              now, before))
    return out


def without_heartbeats(conditions: Iterable[Object]) -> list[Object]:
    """Conditions as compared for change: everything but lastHeartbeatTime."""
    return [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in conditions]
