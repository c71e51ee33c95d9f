"""The pod `status` the agent PATCHes, computed as the kubelet computes it, from runtime state.

Pure: given the pod, its sandbox and containers as the CRI reports them, the waiting reasons the
pod worker recorded (ErrImagePull, CrashLoopBackOff, ...), the probe results and the previous
status, return the whole new status (kubelet_pods.go generateAPIPodStatus / getPhase and
status/generate.go, plus the status manager's rules: lastTransitionTime moves only when a
condition's status flips, startTime never changes once set, a terminal phase is never left,
timestamps have second precision). Init container statuses are in spec order, container statuses
sorted by name, as the kubelet sorts them. `merge_patch_for` turns old/new into the PATCH body.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agent import labels
from cri.v1 import api_pb2 as api

Object = dict[str, Any]
# Condition types the kubelet owns, in the order it writes them; others are kept as they are.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")
MAX_TERMINATION_MESSAGE = 12 * 1024  # shared by all containers of a pod (kubelet's limit)
UNKNOWN_EXIT = 137  # what the kubelet reports for a container that vanished
TERMINAL = ("Succeeded", "Failed")


def compute_pod_status(pod: Mapping[str, Any], *, sandbox: api.PodSandboxStatus | None,
                       containers: Sequence[api.ContainerStatus],
                       waiting: Mapping[str, tuple[str, str]], ready: Mapping[str, bool],
                       started: Mapping[str, bool], host_ip: str, now: str,
                       previous: Mapping[str, Any] | None,
                       pod_is_terminal: bool = False) -> Object:
    """Return the pod's whole status.

    `containers` holds every attempt the runtime still has (init and regular); `waiting` maps a
    container name to the (reason, message) of its last failed start; `ready` and `started` are
    the probe results (a name that is absent has no such probe, so counts as passing).
    `previous` is the last status written (default: the pod's own); `now` an RFC 3339 time.
    `pod_is_terminal` says the pod is being torn down for good, so stopped containers make it
    Succeeded or Failed whatever its restartPolicy.
    """
    spec = pod.get("spec") or {}
    old: Mapping[str, Any] = previous if previous is not None else (pod.get("status") or {})
    ctx = _Context(pod, containers, waiting, ready, started)
    init_specs = list(spec.get("initContainers") or [])
    init_statuses = [ctx.container_status(c, old, "initContainerStatuses", True)
                     for c in init_specs]
    statuses = sorted((ctx.container_status(c, old, "containerStatuses", False)
                       for c in spec.get("containers") or []), key=lambda s: str(s["name"]))
    all_statuses = init_statuses + statuses
    phase = get_phase(spec, all_statuses, pod_is_terminal)
    for earlier in (old.get("phase"), (pod.get("status") or {}).get("phase")):
        if phase not in TERMINAL and earlier in TERMINAL:
            phase = earlier
    same_phase = phase == old.get("phase")
    status: Object = {"phase": phase, **_present(reason=same_phase and old.get("reason"),
                                                 message=same_phase and old.get("message"))}
    status["conditions"] = _conditions(spec, sandbox, all_statuses, phase, old, now)
    if host_ip:
        status.update(hostIP=host_ip, hostIPs=[{"ip": host_ip}])
    pod_ips = _pod_ips(spec, sandbox, host_ip, old)
    if pod_ips:
        status.update(podIP=pod_ips[0], podIPs=[{"ip": ip} for ip in pod_ips])
    status.update(startTime=old.get("startTime") or now, **_present(qosClass=old.get("qosClass")))
    if init_specs:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = statuses
    _truncate_messages(all_statuses)
    return status


def get_phase(spec: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]],
              pod_is_terminal: bool = False) -> str:
    """Return the pod phase from its container statuses (the kubelet's getPhase)."""
    by_name = {s["name"]: s for s in statuses}
    pending_init = failed_init = unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        s = by_name.get(c.get("name"))
        kind = _kind(s)
        if not _restartable(c):
            if kind in ("terminated", "restarted"):
                failed_init += _exit_code(s, kind) != 0
            else:
                pending_init += 1
        elif kind == "running":  # a sidecar counts as a container once it has started
            pending_init += not (s or {}).get("started")
            running += 1
        elif kind in ("waiting", "unknown"):
            pending_init += 1
            waiting += kind == "waiting"
            unknown += kind == "unknown"
        elif kind == "missing":
            unknown += 1
    for c in spec.get("containers") or []:
        s = by_name.get(c.get("name"))
        kind = _kind(s)
        running += kind == "running"
        waiting += kind == "waiting"
        unknown += kind in ("missing", "unknown")
        stopped += kind in ("terminated", "restarted")
        succeeded += kind == "terminated" and _exit_code(s, kind) == 0
    policy = spec.get("restartPolicy") or "Always"
    if failed_init and policy == "Never":
        return "Failed"
    if (pending_init and not _any_regular_started(spec, statuses)) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if running or not stopped or unknown:
        return "Pending"
    if pod_is_terminal:
        return "Succeeded" if stopped == succeeded else "Failed"
    if policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if policy == "Never" else "Running"


def _kind(s: Mapping[str, Any] | None) -> str:
    """Classify a container status as getPhase does; "restarted" is waiting after an exit."""
    if s is None:
        return "missing"
    state = s.get("state") or {}
    for kind in ("running", "terminated"):
        if kind in state:
            return kind
    if "waiting" in state:
        return "restarted" if "terminated" in (s.get("lastState") or {}) else "waiting"
    return "unknown"


def _exit_code(s: Mapping[str, Any] | None, kind: str) -> int:
    state = (s or {}).get("lastState" if kind == "restarted" else "state") or {}
    return int((state.get("terminated") or {}).get("exitCode", 0))


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Return whether `new` differs from `old` in anything but key order."""
    return old is None or dict(old) != dict(new)


def merge_patch_for(old: Mapping[str, Any] | None, new: Mapping[str, Any], *,
                    uid: str | None = None) -> Object:
    """Return the merge-patch body (RFC 7386) that turns status `old` into `new` on /status.

    With `uid`, the body also carries `metadata.uid`, so that it applies only to that pod
    (the kubelet's guard against a pod deleted and recreated under the same name)."""
    body: Object = {"status": _diff(old or {}, new)}
    if uid:
        body["metadata"] = {"uid": uid}
    return body


def crash_loop_message(pod: Mapping[str, Any], container: str, backoff_seconds: int) -> str:
    """Return the CrashLoopBackOff waiting message, worded as the kubelet words it."""
    meta = pod.get("metadata") or {}
    return (f"back-off {go_duration(backoff_seconds)} restarting failed container={container} "
            f"pod={meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})")


def go_duration(seconds: int) -> str:
    """Format whole seconds as Go prints a time.Duration under an hour: 10s, 1m20s, 5m0s."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def rfc3339(ns: int) -> str:
    """Format a CRI timestamp (ns since the epoch) with the API's second precision."""
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Context:
    """The runtime facts of one pod, indexed by container name, newest attempt first."""

    def __init__(self, pod: Mapping[str, Any], containers: Sequence[api.ContainerStatus],
                 waiting: Mapping[str, tuple[str, str]], ready: Mapping[str, bool],
                 started: Mapping[str, bool]) -> None:
        self.pod = pod
        self.waiting, self.ready, self.started = waiting, ready, started
        self.attempts: dict[str, list[api.ContainerStatus]] = {}
        for c in sorted(containers, key=lambda c: (_restart_count(c), c.created_at),
                        reverse=True):
            name = c.metadata.name or c.labels.get(labels.CONTAINER_NAME, "")
            self.attempts.setdefault(name, []).append(c)

    def container_status(self, spec: Mapping[str, Any], old_status: Mapping[str, Any],
                         field: str, is_init: bool) -> Object:
        """Return one container's status (convertToAPIContainerStatuses, one container)."""
        name = str(spec.get("name", ""))
        pod_spec = self.pod.get("spec") or {}
        old = next((s for s in old_status.get(field) or [] if s.get("name") == name), None)
        default = "PodInitializing" if pod_spec.get("initContainers") else "ContainerCreating"
        status: Object = {"name": name, "state": {"waiting": {"reason": default}},
                          "lastState": {}, "ready": False, "restartCount": 0,
                          "image": spec.get("image", ""), "imageID": ""}
        if old is not None and "terminated" in (old.get("state") or {}):
            status = copy.deepcopy(dict(old))
        elif old is not None:  # until the runtime says otherwise
            status.update(restartCount=old.get("restartCount", 0),
                          lastState=copy.deepcopy(old.get("lastState") or {}))
        attempts = self.attempts.get(name, [])
        if attempts:
            status = self._from_runtime(spec, attempts, old, name)
        elif old is not None and "running" in (old.get("state") or {}) \
                and "terminated" not in status["lastState"]:
            status["lastState"] = {"terminated": {
                "exitCode": UNKNOWN_EXIT, "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was deleted.  "
                           "The container used to be Running"}}
            if not (self.pod.get("metadata") or {}).get("deletionTimestamp"):
                status["restartCount"] += 1
        self._apply_waiting(spec, status, attempts, is_init)
        self._apply_probes(spec, status, is_init)
        return status

    def _from_runtime(self, spec: Mapping[str, Any], attempts: list[api.ContainerStatus],
                      old: Mapping[str, Any] | None, name: str) -> Object:
        """The newest attempt's state; lastState is the attempt before it (an older restart
        count), or, once the runtime has removed that one, what the old status knew of it."""
        newest = attempts[0]
        state, restarts = _state(newest, old)
        status: Object = {"name": name, "state": state, "lastState": {}, "ready": False,
                          "restartCount": restarts, "image": spec.get("image", ""),
                          "imageID": newest.image_ref,
                          "containerID": f"containerd://{newest.id}"}
        if len(attempts) > 1:
            earlier = [a for a in attempts[1:] if _restart_count(a) < _restart_count(newest)]
            status["lastState"] = _state((earlier or attempts[1:])[0], None)[0]
        elif restarts > 0 and old is not None:
            same = old.get("containerID") == status["containerID"]
            last = (old.get("lastState") if same else old.get("state")) or {}
            if "terminated" in last:
                status["lastState"] = copy.deepcopy(dict(last))
        return status

    def _apply_waiting(self, spec: Mapping[str, Any], status: Object,
                       attempts: list[api.ContainerStatus], is_init: bool) -> None:
        reason = self.waiting.get(status["name"])
        newest = attempts[0] if attempts else None
        succeeded = newest is not None and newest.state == api.CONTAINER_EXITED \
            and newest.exit_code == 0
        if reason is None or (is_init and succeeded) or not self._should_restart(spec, newest):
            return  # an init container that succeeded is never run again
        if "terminated" in status["state"]:
            status["lastState"] = status["state"]
        status["state"] = {"waiting": _present(reason=reason[0], message=reason[1])}

    def _should_restart(self, spec: Mapping[str, Any],
                        newest: api.ContainerStatus | None) -> bool:
        """ShouldContainerBeRestarted: would the next sync start this container again?"""
        if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
            return False
        if newest is None or newest.state in (api.CONTAINER_UNKNOWN, api.CONTAINER_CREATED):
            return True
        if newest.state == api.CONTAINER_RUNNING:
            return False
        policy = "Always" if _restartable(spec) else \
            (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        return policy == "Always" or (policy == "OnFailure" and newest.exit_code != 0)

    def _apply_probes(self, spec: Mapping[str, Any], status: Object, is_init: bool) -> None:
        running = "running" in status["state"]
        name = status["name"]
        status["started"] = running and self.started.get(name, True)
        if is_init and not _restartable(spec):
            terminated = status["state"].get("terminated")
            status["ready"] = terminated is not None and terminated.get("exitCode") == 0
        else:
            status["ready"] = status["started"] and self.ready.get(name, True)


def _state(c: api.ContainerStatus, old: Mapping[str, Any] | None) -> tuple[Object, int]:
    """Return the API state of one runtime container and its restart count."""
    restarts = _restart_count(c)
    if c.state == api.CONTAINER_RUNNING:
        return {"running": {"startedAt": rfc3339(c.started_at)}}, restarts
    if c.state == api.CONTAINER_EXITED:
        reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
        return {"terminated": {"exitCode": c.exit_code, "reason": reason, **_present(
            message=c.message, startedAt=c.started_at and rfc3339(c.started_at),
            finishedAt=c.finished_at and rfc3339(c.finished_at)),
            "containerID": f"containerd://{c.id}"}}, restarts
    if c.state == api.CONTAINER_UNKNOWN and old is not None \
            and "running" in (old.get("state") or {}):
        message = "The container could not be located when the pod was terminated"
        return {"terminated": {"exitCode": UNKNOWN_EXIT, "reason": "ContainerStatusUnknown",
                               "message": message}}, int(old.get("restartCount", 0)) + 1
    return {"waiting": {}}, restarts


def _conditions(spec: Mapping[str, Any], sandbox: api.PodSandboxStatus | None,
                statuses: Sequence[Mapping[str, Any]], phase: str, old: Mapping[str, Any],
                now: str) -> list[Object]:
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    kept = [copy.deepcopy(dict(c)) for c in old.get("conditions") or []
            if c.get("type") not in KUBELET_CONDITIONS]
    host_network = bool(spec.get("hostNetwork"))
    sandbox_ok = sandbox is not None and sandbox.state == api.SANDBOX_READY and \
        (host_network or bool(sandbox.network.ip))
    containers_ready = _containers_ready(spec, statuses, phase)
    generated = [("PodReadyToStartContainers", sandbox_ok, "", ""),
                 _initialized(spec, statuses, phase),
                 _pod_ready(spec, kept, containers_ready),
                 containers_ready,
                 ("PodScheduled", True, "", "")]
    result = kept
    for kind, ok, reason, message in generated:
        value = "True" if ok else "False"
        before = previous.get(kind)
        since = before.get("lastTransitionTime") if before and before.get("status") == value \
            else None
        result.append({"type": kind, "status": value, "lastProbeTime": None,
                       "lastTransitionTime": since or now,
                       **_present(reason=reason, message=message)})
    return result


Condition = tuple[str, bool, str, str]  # type, status, reason, message


def _containers_ready(spec: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]],
                      phase: str) -> Condition:
    by_name = {s["name"]: s for s in statuses}
    names = [c["name"] for c in spec.get("initContainers") or [] if _restartable(c)]
    names += [c["name"] for c in spec.get("containers") or []]
    unknown = [n for n in names if n not in by_name]
    if phase == "Succeeded" and not unknown:
        return ("ContainersReady", False, "PodCompleted", "")
    if phase == "Failed":
        return ("ContainersReady", False, "PodFailed", "")
    unready = [n for n in names if n in by_name and not by_name[n].get("ready")]
    return _unless("ContainersReady", "ContainersNotReady", unknown, unready, "unready")


def _initialized(spec: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]],
                 phase: str) -> Condition:
    by_name = {s["name"]: s for s in statuses}
    names = [c["name"] for c in spec.get("initContainers") or []]
    unknown = [n for n in names if n not in by_name]
    incomplete = [c["name"] for c in spec.get("initContainers") or [] if c["name"] in by_name
                  and not by_name[c["name"]].get("started" if _restartable(c) else "ready")]
    if phase == "Succeeded" and not unknown:
        return ("Initialized", True, "PodCompleted", "")
    if _any_regular_started(spec, statuses):
        return ("Initialized", True, "", "")
    return _unless("Initialized", "ContainersNotInitialized", unknown, incomplete, "incomplete")


def _unless(kind: str, reason: str, unknown: list[str], bad: list[str], word: str) -> Condition:
    """True, unless some containers are unknown or `word` (Go prints lists as [a b])."""
    messages = [f"containers with {adjective} status: [{' '.join(names)}]"
                for adjective, names in (("unknown", unknown), (word, bad)) if names]
    return (kind, False, reason, ", ".join(messages)) if messages else (kind, True, "", "")


def _pod_ready(spec: Mapping[str, Any], conditions: Sequence[Mapping[str, Any]],
               containers_ready: Condition) -> Condition:
    if not containers_ready[1]:
        return ("Ready",) + containers_ready[1:]
    by_type = {c.get("type"): c.get("status") for c in conditions}
    messages = [f'corresponding condition of pod readiness gate "{kind}" does not exist.'
                if kind not in by_type else
                f'the status of pod readiness gate "{kind}" is not "True", but {by_type[kind]}'
                for kind in (g.get("conditionType", "") for g in spec.get("readinessGates") or [])
                if by_type.get(kind) != "True"]
    if messages:
        return ("Ready", False, "ReadinessGatesNotReady", ", ".join(messages))
    return ("Ready", True, "", "")


def _pod_ips(spec: Mapping[str, Any], sandbox: api.PodSandboxStatus | None, host_ip: str,
             old: Mapping[str, Any]) -> list[str]:
    """The sandbox's IPs, one per family, the node's family first; kept once it has none."""
    old_ips = [p["ip"] for p in old.get("podIPs") or [] if p.get("ip")] or \
        ([old["podIP"]] if old.get("podIP") else [])
    if spec.get("hostNetwork"):
        return old_ips or ([host_ip] if host_ip else [])
    if sandbox is None or sandbox.state != api.SANDBOX_READY or not sandbox.network.ip:
        return old_ips
    found = [sandbox.network.ip] + [extra.ip for extra in sandbox.network.additional_ips]
    primary = _family(host_ip) or 4
    firsts = {family: next((ip for ip in found if _family(ip) == family), "") for family in (4, 6)}
    return [ip for ip in (firsts.pop(primary), *firsts.values()) if ip]


def _family(ip: str) -> int:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return 0


def _truncate_messages(statuses: Sequence[Object]) -> None:
    limit = MAX_TERMINATION_MESSAGE // max(len(statuses), 1)
    for status in statuses:
        for key in ("state", "lastState"):
            terminated = (status.get(key) or {}).get("terminated")
            if terminated and len(terminated.get("message", "")) > limit:
                terminated["message"] = terminated["message"][:limit]


def _present(**fields: Any) -> Object:
    """The fields that are set (Go's omitempty)."""
    return {key: value for key, value in fields.items() if value}


def _restartable(container: Mapping[str, Any]) -> bool:
    """An init container with restartPolicy Always: a sidecar."""
    return container.get("restartPolicy") == "Always"


def _restart_count(c: api.ContainerStatus) -> int:
    value = c.annotations.get(labels.RESTART_COUNT, "0")
    return int(value) if value.isdigit() else 0


def _any_regular_started(spec: Mapping[str, Any], statuses: Sequence[Mapping[str, Any]]) -> bool:
    names = {c.get("name") for c in spec.get("containers") or []}
    return any(s["name"] in names and _kind(s) in ("running", "terminated") for s in statuses)


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Object:
    patch: Object = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = _diff(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = copy.deepcopy(value)
    return patch
