"""The pod printer: READY, the STATUS reason, RESTARTS with "(2m ago)", and the wide columns.

Owns kube-apiserver's pod summary rules. STATUS starts from status.reason or the phase, is
overridden by the first unfinished init container ("Init:0/1", "Init:Error",
"Init:CrashLoopBackOff"), otherwise by the app containers' waiting/terminated reasons
(scanned last to first, so the first container wins), and finally by "Terminating" (or
"Unknown" for a NodeLost pod) once deletionTimestamp is set. Sidecars (init containers with
restartPolicy Always) count towards READY's total and their restarts always count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from .common import (
    AGE,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    dig,
    human_duration,
    items,
    mapping,
    name_of,
    number,
    parse_time,
    text,
)

COLUMNS = (
    NAME,
    Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", description="The aggregate status of the containers in this pod."),
    Column("Restarts", description="Container restarts, and when the last one restarted."),
    AGE,
    Column("IP", priority=1, description="IP address allocated to the pod."),
    Column("Node", priority=1, description="The node the pod is bound to."),
    Column("Nominated Node", priority=1, description="Node the pod is nominated to preempt on."),
    Column("Readiness Gates", priority=1, description="Pod readiness gates that are true."),
)

_TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class _Tally:
    """Running totals while scanning container statuses, as printPod keeps them."""

    reason: str
    ready: int = 0
    restarts: int = 0
    last_restart: datetime | None = None
    sidecar_restarts: int = 0
    last_sidecar_restart: datetime | None = None


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None or (current is not None and candidate <= current):
        return current
    return candidate


def _last_finished(status: Obj) -> datetime | None:
    return parse_time(dig(status, "lastState", "terminated", "finishedAt"))


def _condition_true(pod_status: Obj, kind: str, *, first_only: bool) -> bool:
    for condition in items(pod_status.get("conditions")):
        if condition.get("type") != kind:
            continue
        if condition.get("status") == "True":
            return True
        if first_only:
            return False
    return False


def _init_reason(index: int, total: int, state: Obj) -> str:
    terminated, waiting = state.get("terminated"), state.get("waiting")
    if isinstance(terminated, Mapping):
        if reason := text(terminated.get("reason")):
            return "Init:" + reason
        signal = number(terminated.get("signal"))
        if signal:
            return f"Init:Signal:{signal}"
        return f"Init:ExitCode:{number(terminated.get('exitCode'))}"
    waiting_reason = text(mapping(waiting).get("reason"))
    if waiting_reason and waiting_reason != "PodInitializing":
        return "Init:" + waiting_reason
    return f"Init:{index}/{total}"


def _scan_init_containers(spec: Obj, status: Obj, tally: _Tally) -> bool:
    """Count init restarts and find the first unfinished init container; True if initializing."""
    specs = items(spec.get("initContainers"))
    sidecars = {text(c.get("name")) for c in specs if c.get("restartPolicy") == "Always"}
    for index, container in enumerate(items(status.get("initContainerStatuses"))):
        count, finished = number(container.get("restartCount")), _last_finished(container)
        tally.restarts += count
        tally.last_restart = _later(tally.last_restart, finished)
        is_sidecar = text(container.get("name")) in sidecars
        if is_sidecar:
            tally.sidecar_restarts += count
            tally.last_sidecar_restart = _later(tally.last_sidecar_restart, finished)
        state = mapping(container.get("state"))
        terminated = state.get("terminated")
        if isinstance(terminated, Mapping) and number(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container.get("started") is True:
            if container.get("ready") is True:
                tally.ready += 1
            continue
        tally.reason = _init_reason(index, len(specs), state)
        return True
    return False


def _container_reason(state: Obj) -> str | None:
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if isinstance(waiting, Mapping) and text(waiting.get("reason")):
        return text(waiting.get("reason"))
    if not isinstance(terminated, Mapping):
        return None
    if reason := text(terminated.get("reason")):
        return reason
    signal = number(terminated.get("signal"))
    if signal:
        return f"Signal:{signal}"
    return f"ExitCode:{number(terminated.get('exitCode'))}"


def _scan_containers(status: Obj, tally: _Tally) -> None:
    """Count app container restarts and readiness; later containers' reasons lose to earlier."""
    tally.restarts = tally.sidecar_restarts
    tally.last_restart = tally.last_sidecar_restart
    has_running = False
    for container in reversed(items(status.get("containerStatuses"))):
        tally.restarts += number(container.get("restartCount"))
        tally.last_restart = _later(tally.last_restart, _last_finished(container))
        state = mapping(container.get("state"))
        reason = _container_reason(state)
        if reason is not None:
            tally.reason = reason
        elif container.get("ready") is True and isinstance(state.get("running"), Mapping):
            has_running = True
            tally.ready += 1
    if tally.reason == "Completed" and has_running:
        ready = _condition_true(status, "Ready", first_only=False)
        tally.reason = "Running" if ready else "NotReady"


def summarize(pod: Obj) -> _Tally:
    """Compute the READY numerator, STATUS reason and restart totals for one pod."""
    spec, status = mapping(pod.get("spec")), mapping(pod.get("status"))
    phase = text(status.get("phase"))
    reason = text(status.get("reason")) or phase
    for condition in items(status.get("conditions")):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    tally = _Tally(reason)
    initializing = _scan_init_containers(spec, status, tally)
    if not initializing or _condition_true(status, "Initialized", first_only=True):
        _scan_containers(status, tally)
    if dig(pod, "metadata", "deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            tally.reason = "Unknown"
        elif phase not in _TERMINAL_PHASES:
            tally.reason = "Terminating"
    return tally


def _total_containers(spec: Obj) -> int:
    sidecars = [c for c in items(spec.get("initContainers")) if c.get("restartPolicy") == "Always"]
    return len(items(spec.get("containers"))) + len(sidecars)


def _readiness_gates(spec: Obj, status: Obj) -> str:
    gates = items(spec.get("readinessGates"))
    if not gates:
        return "<none>"
    conditions = items(status.get("conditions"))
    passed = 0
    for gate in gates:
        match = next((c for c in conditions if c.get("type") == gate.get("conditionType")), None)
        if match is not None and match.get("status") == "True":
            passed += 1
    return f"{passed}/{len(gates)}"


def _pod_ip(status: Obj) -> str:
    ips = items(status.get("podIPs"))
    ip = text(ips[0].get("ip")) if ips else text(status.get("podIP"))
    return ip or "<none>"


def _cells(pod: Obj, ctx: PrintContext) -> list[Cell]:
    spec, status = mapping(pod.get("spec")), mapping(pod.get("status"))
    tally = summarize(pod)
    restarts = str(tally.restarts)
    if tally.restarts and tally.last_restart is not None:
        restarts = f"{tally.restarts} ({human_duration(ctx.now - tally.last_restart)} ago)"
    return [
        name_of(pod),
        f"{tally.ready}/{_total_containers(spec)}",
        tally.reason,
        restarts,
        age(pod, ctx),
        _pod_ip(status),
        text(spec.get("nodeName")) or "<none>",
        text(status.get("nominatedNodeName")) or "<none>",
        _readiness_gates(spec, status),
    ]


def _conditions(pod: Obj) -> list[dict[str, str]]:
    phase = dig(pod, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


PRINTERS = {("", "pods"): Printer(COLUMNS, _cells, _conditions)}
