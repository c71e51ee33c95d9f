"""agent.status: the pod status computed from runtime state, as the kubelet computes it.

Cases are tables of (pod, runtime state) -> expected fields. `kubectl_status` re-implements
kubectl's STATUS column (printers.go printPod) so the tests also check what users will see
(Init:0/1, PodInitializing, CrashLoopBackOff, Completed...).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from agent import labels
from agent.status import (
    compute_pod_status,
    crash_loop_message,
    get_phase,
    go_duration,
    merge_patch_for,
    rfc3339,
    status_changed,
)
from controlplane.api.patch.merge import apply_merge_patch
from controlplane.apiserver.registry.resources import lookup
from controlplane.apiserver.registry.store import Store
from controlplane.apiserver.storage.cacher import WatchCache
from controlplane.apiserver.storage.memory import MemoryStorage
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

S = 1_000_000_000
T0 = 1_700_000_000
NOW = "2024-01-01T00:00:00Z"
EARLIER = "2023-12-31T00:00:00Z"
HOST = "192.168.1.10"
UID = "0b6d6d3e-uid"
BACKOFF = "back-off 10s restarting failed container=app pod=web_default(0b6d6d3e-uid)"

RUNNING, EXITED, CREATED, UNKNOWN = (api.CONTAINER_RUNNING, api.CONTAINER_EXITED,
                                     api.CONTAINER_CREATED, api.CONTAINER_UNKNOWN)


def container(name: str, image: str = "busybox:1.36", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always",
        status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default", "uid": UID},
            "spec": {"containers": [container(n) for n in names],
                     "initContainers": [container(n) for n in init],
                     "restartPolicy": policy, **spec},
            "status": status or {"phase": "Pending", "qosClass": "BestEffort"}}


def ctr(name: str, state: api.ContainerState, *, restarts: int = 0, exit_code: int = 0,
        reason: str = "", message: str = "", cid: str | None = None) -> api.ContainerStatus:
    """A runtime container; newer restarts are created, started and finished later."""
    base = (T0 + 100 * restarts) * S
    return api.ContainerStatus(
        id=cid or f"{name}-{restarts}", metadata=api.ContainerMetadata(name=name, attempt=restarts),
        state=state, created_at=base, started_at=base + S if state != CREATED else 0,
        finished_at=base + 50 * S if state == EXITED else 0, exit_code=exit_code, reason=reason,
        message=message, image=api.ImageSpec(image="busybox:1.36"),
        image_ref="docker.io/library/busybox@sha256:abc",
        labels={labels.CONTAINER_NAME: name},
        annotations={labels.RESTART_COUNT: str(restarts)})


def sandbox(ip: str = "10.88.0.2", ready: bool = True, *extra: str) -> api.PodSandboxStatus:
    return api.PodSandboxStatus(
        id="sb", state=api.SANDBOX_READY if ready else api.SANDBOX_NOTREADY,
        network=api.PodSandboxNetworkStatus(
            ip=ip, additional_ips=[api.PodIP(ip=e) for e in extra]))


def compute(p: Mapping[str, Any], runtime: list[api.ContainerStatus],
            sb: api.PodSandboxStatus | None = None, *, previous: Mapping[str, Any] | None = None,
            waiting: Mapping[str, tuple[str, str]] | None = None,
            ready: Mapping[str, bool] | None = None, started: Mapping[str, bool] | None = None,
            now: str = NOW, **kw: Any) -> dict[str, Any]:
    return compute_pod_status(p, sandbox=sb, containers=runtime, waiting=waiting or {},
                              ready=ready or {}, started=started or {}, host_ip=HOST, now=now,
                              previous=previous, **kw)


def cond(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def cstatus(status: Mapping[str, Any], name: str) -> dict[str, Any]:
    every = status.get("initContainerStatuses", []) + status["containerStatuses"]
    return next(s for s in every if s["name"] == name)


def kubectl_status(p: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """kubectl get pods' STATUS column, from the fields the agent writes."""
    reason = status.get("reason") or status["phase"]
    initializing = False
    inits = status.get("initContainerStatuses", [])
    for i, c in enumerate(inits):
        state = c["state"]
        if state.get("terminated", {}).get("exitCode", -1) == 0:
            continue
        if "terminated" in state:
            t = state["terminated"]
            reason = "Init:" + t["reason"] if t.get("reason") else f"Init:ExitCode:{t['exitCode']}"
        elif state.get("waiting", {}).get("reason", "PodInitializing") != "PodInitializing":
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    if not initializing or cond(status, "Initialized")["status"] == "True":
        has_running = False
        for c in reversed(status["containerStatuses"]):
            state = c["state"]
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif c["ready"] and "running" in state:
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    return str(reason)


# -- phase, container states and kubectl's view ------------------------------------------------

CASES = [
    pytest.param(pod("app"), [], None, {}, "Pending", "ContainerCreating",
                 {"app": {"waiting": {"reason": "ContainerCreating"}}}, id="nothing-yet"),
    pytest.param(pod("app"), [], sandbox(), {"app": ("ErrImagePull", "pull failed: 404")},
                 "Pending", "ErrImagePull",
                 {"app": {"waiting": {"reason": "ErrImagePull", "message": "pull failed: 404"}}},
                 id="image-pull-error"),
    pytest.param(pod("app"), [ctr("app", CREATED)], sandbox(), {}, "Pending", "Pending",
                 {"app": {"waiting": {}}}, id="created-not-started"),
    pytest.param(pod("app"), [ctr("app", RUNNING)], sandbox(), {}, "Running", "Running",
                 {"app": {"running": {"startedAt": rfc3339((T0 + 1) * S)}}}, id="running"),
    pytest.param(pod("app", init=("setup",)), [ctr("setup", RUNNING)], sandbox(), {},
                 "Pending", "Init:0/1",
                 {"setup": {"running": {"startedAt": rfc3339((T0 + 1) * S)}},
                  "app": {"waiting": {"reason": "PodInitializing"}}}, id="init-running"),
    pytest.param(pod("app", init=("one", "two")), [ctr("one", EXITED, reason="Completed")],
                 sandbox(), {}, "Pending", "Init:1/2",
                 {"two": {"waiting": {"reason": "PodInitializing"}}}, id="init-second"),
    pytest.param(pod("app", init=("setup",)),
                 [ctr("setup", EXITED, reason="Completed"), ctr("app", CREATED)], sandbox(), {},
                 "Pending", "Pending", {"app": {"waiting": {}}}, id="init-done-app-created"),
    pytest.param(pod("app", init=("setup",)),
                 [ctr("setup", EXITED, reason="Completed"), ctr("app", RUNNING)], sandbox(), {},
                 "Running", "Running", {}, id="init-done-running"),
    pytest.param(pod("app", init=("setup",), policy="Never"),
                 [ctr("setup", EXITED, exit_code=2, reason="Error")], sandbox(), {},
                 "Failed", "Init:Error", {}, id="init-failed-never"),
    pytest.param(pod("app", init=("setup",)), [ctr("setup", EXITED, exit_code=1)], sandbox(),
                 {"setup": ("CrashLoopBackOff", BACKOFF)}, "Pending", "Init:CrashLoopBackOff",
                 {"setup": {"waiting": {"reason": "CrashLoopBackOff", "message": BACKOFF}}},
                 id="init-crashloop"),
    pytest.param(pod("app"), [ctr("app", EXITED, restarts=0, exit_code=1, reason="Error"),
                              ctr("app", EXITED, restarts=1, exit_code=1, reason="Error")],
                 sandbox(), {"app": ("CrashLoopBackOff", BACKOFF)}, "Running", "CrashLoopBackOff",
                 {"app": {"waiting": {"reason": "CrashLoopBackOff", "message": BACKOFF}}},
                 id="crashloop"),
    pytest.param(pod("app", policy="OnFailure"), [ctr("app", EXITED, reason="Completed")],
                 sandbox(), {}, "Succeeded", "Completed", {}, id="onfailure-succeeded"),
    pytest.param(pod("app", policy="Never"), [ctr("app", EXITED, exit_code=0)], sandbox(), {},
                 "Succeeded", "Completed", {}, id="never-succeeded-no-reason"),
    pytest.param(pod("app", policy="Never"), [ctr("app", EXITED, exit_code=3, reason="Error")],
                 sandbox(), {}, "Failed", "Error", {}, id="never-failed"),
    pytest.param(pod("app", policy="OnFailure"), [ctr("app", EXITED, exit_code=3)], sandbox(),
                 {}, "Running", "Error", {}, id="onfailure-restarting"),
    pytest.param(pod("app"), [ctr("app", EXITED, exit_code=0)], sandbox(), {}, "Running",
                 "Completed", {}, id="always-exited-0-restarts"),
    pytest.param(pod("app", policy="Never"), [ctr("app", EXITED, exit_code=137,
                                                  reason="OOMKilled")],
                 sandbox(), {}, "Failed", "OOMKilled",
                 {"app": {"terminated": {
                     "exitCode": 137, "reason": "OOMKilled", "startedAt": rfc3339((T0 + 1) * S),
                     "finishedAt": rfc3339((T0 + 50) * S), "containerID": "containerd://app-0"}}},
                 id="oom-killed"),
    pytest.param(pod("web", "side", policy="Never"),
                 [ctr("web", EXITED, exit_code=0), ctr("side", RUNNING)], sandbox(), {},
                 "Running", "Running", {}, id="one-done-one-running"),
]


@pytest.mark.parametrize("p, runtime, sb, waiting, phase, shown, states", CASES)
def test_phase_states_and_kubectl_view(p: dict[str, Any], runtime: list[api.ContainerStatus],
                                       sb: api.PodSandboxStatus | None,
                                       waiting: dict[str, tuple[str, str]], phase: str,
                                       shown: str, states: dict[str, Any]) -> None:
    status = compute(p, runtime, sb, waiting=waiting)
    assert status["phase"] == phase
    for name, state in states.items():
        assert cstatus(status, name)["state"] == state
    assert kubectl_status(p, status) == shown


def test_pending_pod_has_every_field_kubectl_reads() -> None:
    status = compute(pod("app"), [])
    assert status == {
        "phase": "Pending", "hostIP": HOST, "hostIPs": [{"ip": HOST}], "startTime": NOW,
        "qosClass": "BestEffort",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None,
             "lastTransitionTime": NOW},
            {"type": "Initialized", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": NOW},
            {"type": "Ready", "status": "False", "lastProbeTime": None,
             "lastTransitionTime": NOW, "reason": "ContainersNotReady",
             "message": "containers with unready status: [app]"},
            {"type": "ContainersReady", "status": "False", "lastProbeTime": None,
             "lastTransitionTime": NOW, "reason": "ContainersNotReady",
             "message": "containers with unready status: [app]"},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
             "lastTransitionTime": NOW}],
        "containerStatuses": [
            {"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}},
             "lastState": {}, "ready": False, "restartCount": 0, "image": "busybox:1.36",
             "imageID": "", "started": False}]}


def test_running_pod_is_ready_with_ids_and_ips() -> None:
    status = compute(pod("app"), [ctr("app", RUNNING)], sandbox("10.88.0.7"))
    app = cstatus(status, "app")
    assert app == {"name": "app", "state": {"running": {"startedAt": rfc3339((T0 + 1) * S)}},
                   "lastState": {}, "ready": True, "restartCount": 0, "image": "busybox:1.36",
                   "imageID": "docker.io/library/busybox@sha256:abc",
                   "containerID": "containerd://app-0", "started": True}
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "True"),
        ("ContainersReady", "True"), ("PodScheduled", "True")]
    assert status["podIP"] == "10.88.0.7" and status["podIPs"] == [{"ip": "10.88.0.7"}]


@pytest.mark.parametrize("ready, started, expect_ready, expect_started", [
    ({}, {}, True, True),
    ({"b": False}, {}, False, True),
    ({}, {"b": False}, False, False),  # a startup probe not yet passed hides readiness
    ({"b": True}, {"b": True}, True, True),
])
def test_probe_results_set_ready_and_started(ready: dict[str, bool], started: dict[str, bool],
                                             expect_ready: bool, expect_started: bool) -> None:
    status = compute(pod("b", "a"), [ctr("a", RUNNING), ctr("b", RUNNING)], sandbox(),
                     ready=ready, started=started)
    assert [s["name"] for s in status["containerStatuses"]] == ["a", "b"]  # sorted by name
    b = cstatus(status, "b")
    assert (b["ready"], b["started"]) == (expect_ready, expect_started)
    message = "" if expect_ready else "containers with unready status: [b]"
    assert cond(status, "Ready").get("message", "") == message
    assert cond(status, "ContainersReady")["status"] == ("True" if expect_ready else "False")


def test_unready_message_lists_containers_in_spec_order() -> None:
    status = compute(pod("zeta", "alpha"), [], sandbox())
    assert cond(status, "Ready")["message"] == "containers with unready status: [zeta alpha]"


def test_init_containers_in_spec_order_and_initialized_condition() -> None:
    p = pod("app", init=("zz", "aa"))
    status = compute(p, [ctr("zz", RUNNING)], sandbox())
    assert [s["name"] for s in status["initContainerStatuses"]] == ["zz", "aa"]
    assert cond(status, "Initialized") | {"lastTransitionTime": None} == {
        "type": "Initialized", "status": "False", "lastProbeTime": None,
        "lastTransitionTime": None, "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [zz aa]"}
    done = compute(p, [ctr("zz", EXITED), ctr("aa", EXITED), ctr("app", RUNNING)], sandbox())
    assert cond(done, "Initialized")["status"] == "True"
    assert [s["ready"] for s in done["initContainerStatuses"]] == [True, True]
    assert [s["state"]["terminated"]["reason"] for s in done["initContainerStatuses"]] == \
        ["Completed", "Completed"]


def test_sidecar_counts_once_started() -> None:
    p = pod("app")
    p["spec"]["initContainers"] = [container("proxy", restartPolicy="Always")]
    starting = compute(p, [ctr("proxy", RUNNING)], sandbox(), started={"proxy": False})
    assert starting["phase"] == "Pending"
    assert cond(starting, "Initialized")["status"] == "False"
    up = compute(p, [ctr("proxy", RUNNING), ctr("app", RUNNING)], sandbox())
    assert up["phase"] == "Running" and cond(up, "Initialized")["status"] == "True"
    assert cstatus(up, "proxy")["ready"] is True


# -- restarts: lastState and restartCount ----------------------------------------------------

def test_crashloop_shows_last_termination_and_restart_count() -> None:
    runtime = [ctr("app", EXITED, restarts=1, exit_code=1, reason="Error"),
               ctr("app", EXITED, restarts=0, exit_code=1, reason="Error")]
    app = cstatus(compute(pod("app"), runtime, sandbox(),
                          waiting={"app": ("CrashLoopBackOff", BACKOFF)}), "app")
    assert app["restartCount"] == 1
    assert app["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": BACKOFF}}
    assert app["lastState"]["terminated"]["containerID"] == "containerd://app-1"
    assert app["lastState"]["terminated"]["exitCode"] == 1
    assert app["ready"] is False and app["started"] is False


def test_restarted_container_shows_the_previous_attempt() -> None:
    runtime = [ctr("app", EXITED, restarts=0, exit_code=2, reason="Error"),
               ctr("app", EXITED, restarts=1, exit_code=137, reason="OOMKilled"),
               ctr("app", RUNNING, restarts=2)]
    app = cstatus(compute(pod("app"), runtime, sandbox()), "app")
    assert app["restartCount"] == 2
    assert "running" in app["state"]
    assert app["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert app["containerID"] == "containerd://app-2"


def test_last_state_survives_garbage_collection_of_the_old_attempt() -> None:
    before = compute(pod("app"), [ctr("app", EXITED, restarts=3, exit_code=1)], sandbox())
    after = compute(pod("app"), [ctr("app", RUNNING, restarts=4)], sandbox(), previous=before)
    assert after["containerStatuses"][0]["lastState"] == before["containerStatuses"][0]["state"]
    again = compute(pod("app"), [ctr("app", RUNNING, restarts=4)], sandbox(), previous=after)
    assert again["containerStatuses"][0]["lastState"] == after["containerStatuses"][0]["lastState"]


def test_terminated_status_is_kept_when_the_container_is_removed() -> None:
    p = pod("app", policy="Never")
    done = compute(p, [ctr("app", EXITED, exit_code=1)], sandbox())
    gone = compute(p, [], None, previous=done)
    assert gone["containerStatuses"] == done["containerStatuses"]
    assert gone["phase"] == "Failed"


def test_vanished_running_container_is_reported_unknown() -> None:
    running = compute(pod("app"), [ctr("app", RUNNING)], sandbox())
    gone = compute(pod("app"), [], sandbox(), previous=running)
    app = cstatus(gone, "app")
    assert app["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    assert app["lastState"]["terminated"]["exitCode"] == 137
    assert app["restartCount"] == 1
    assert gone["phase"] == "Running"
    unknown = compute(pod("app"), [ctr("app", UNKNOWN)], sandbox(), previous=running)
    assert cstatus(unknown, "app")["state"]["terminated"]["reason"] == "ContainerStatusUnknown"


def test_waiting_reason_ignored_for_a_running_container() -> None:
    status = compute(pod("app"), [ctr("app", RUNNING)], sandbox(),
                     waiting={"app": ("CrashLoopBackOff", BACKOFF)})
    assert "running" in cstatus(status, "app")["state"]


def test_termination_message_is_kept_and_truncated() -> None:
    status = compute(pod("app", policy="Never"),
                     [ctr("app", EXITED, exit_code=1, message="x" * 20000)], sandbox())
    assert len(cstatus(status, "app")["state"]["terminated"]["message"]) == 12 * 1024


# -- conditions, times, IPs ------------------------------------------------------------------

def test_transition_times_change_only_when_status_flips() -> None:
    first = compute(pod("app"), [ctr("app", RUNNING)], sandbox(), now=EARLIER)
    assert cond(first, "Ready")["lastTransitionTime"] == EARLIER
    same = compute(pod("app"), [ctr("app", RUNNING)], sandbox(), previous=first)
    assert same == first  # nothing moved, so nothing to PATCH
    assert not status_changed(first, same)
    flipped = compute(pod("app"), [ctr("app", RUNNING)], sandbox(), previous=first,
                      ready={"app": False})
    assert cond(flipped, "Ready")["lastTransitionTime"] == NOW
    assert cond(flipped, "Initialized")["lastTransitionTime"] == EARLIER
    assert flipped["startTime"] == EARLIER


def test_pod_scheduled_and_foreign_conditions_come_from_previous() -> None:
    scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": EARLIER}
    gate = {"type": "example.com/lb", "status": "False", "lastTransitionTime": EARLIER}
    p = pod("app", readinessGates=[{"conditionType": "example.com/lb"}],
            status={"phase": "Pending", "conditions": [scheduled, gate]})
    status = compute(p, [ctr("app", RUNNING)], sandbox())
    assert cond(status, "PodScheduled") == scheduled
    assert status["conditions"][0] == gate  # conditions the kubelet does not own come first
    assert cond(status, "Ready")["reason"] == "ReadinessGatesNotReady"
    assert cond(status, "Ready")["message"] == \
        'the status of pod readiness gate "example.com/lb" is not "True", but False'
    assert cond(status, "ContainersReady")["status"] == "True"


@pytest.mark.parametrize("policy, code, reason", [
    ("Never", 0, "PodCompleted"), ("OnFailure", 0, "PodCompleted"), ("Never", 1, "PodFailed")])
def test_terminal_pods_are_not_ready_with_reason(policy: str, code: int, reason: str) -> None:
    status = compute(pod("app", policy=policy), [ctr("app", EXITED, exit_code=code)], sandbox())
    assert cond(status, "Ready")["reason"] == reason
    assert cond(status, "ContainersReady")["reason"] == reason


def test_terminal_phase_is_never_left() -> None:
    p = pod("app", policy="Never", status={"phase": "Succeeded", "reason": "Done"})
    status = compute(p, [], None)
    assert status["phase"] == "Succeeded" and status["reason"] == "Done"


def test_pod_being_torn_down_becomes_terminal_despite_always() -> None:
    status = compute(pod("app"), [ctr("app", EXITED, exit_code=143)], sandbox(),
                     pod_is_terminal=True)
    assert status["phase"] == "Failed"


def test_pod_ip_is_kept_once_the_sandbox_is_gone() -> None:
    running = compute(pod("app"), [ctr("app", RUNNING)], sandbox("10.88.0.9"))
    stopped = compute(pod("app", policy="Never"), [ctr("app", EXITED)], sandbox("", False),
                      previous=running)
    assert stopped["podIP"] == "10.88.0.9"
    assert cond(stopped, "PodReadyToStartContainers")["status"] == "False"


def test_host_network_pod_gets_the_node_address() -> None:
    p = pod("app", hostNetwork=True)
    status = compute(p, [ctr("app", RUNNING)], sandbox(""))
    assert status["podIP"] == HOST
    assert cond(status, "PodReadyToStartContainers")["status"] == "True"


def test_dual_stack_ips_put_the_node_family_first() -> None:
    status = compute(pod("app"), [], sandbox("fd00::5", True, "10.88.0.5", "fd00::6"))
    assert status["podIPs"] == [{"ip": "10.88.0.5"}, {"ip": "fd00::5"}]


def test_phase_helper_counts_a_missing_status_as_pending() -> None:
    assert get_phase({"containers": [{"name": "a"}]}, []) == "Pending"


# -- writing the status ----------------------------------------------------------------------

def test_merge_patch_turns_old_into_new() -> None:
    p = pod("app")
    old = compute(p, [], None)
    new = compute(p, [ctr("app", RUNNING)], sandbox(), previous=old)
    body = merge_patch_for(old, new)
    assert set(body) == {"status"}
    assert body["status"]["phase"] == "Running"
    assert "startTime" not in body["status"] and "qosClass" not in body["status"]
    stored = {**p, "status": old}
    assert apply_merge_patch(stored, body)["status"] == new
    removed = copy.deepcopy(new)
    del removed["podIP"], removed["podIPs"]
    assert merge_patch_for(new, removed)["status"] == {"podIP": None, "podIPs": None}
    assert merge_patch_for(None, new, uid=UID) == {"status": new, "metadata": {"uid": UID}}


def test_status_changed_ignores_key_order_only() -> None:
    a = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    b = {"conditions": [{"status": "True", "type": "Ready"}], "phase": "Running"}
    assert not status_changed(a, b)
    assert status_changed(a, {**b, "podIP": "10.0.0.1"})
    assert status_changed(None, b)


def test_crash_loop_message_and_durations() -> None:
    assert crash_loop_message(pod("app"), "app", 10) == BACKOFF
    assert [go_duration(s) for s in (10, 80, 160, 300)] == ["10s", "1m20s", "2m40s", "5m0s"]


async def test_status_from_the_fake_runtime() -> None:
    """The CRI messages FakeRuntime answers (as containerd does) turn into a Running pod."""
    runtime = FakeRuntime(images=["localhost/pause:1", "busybox:1.36"])
    config = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(
        name="web", namespace="default", uid=UID))
    sandbox_id = await runtime.run_pod_sandbox(config)
    cid = await runtime.create_container(sandbox_id, api.ContainerConfig(
        metadata=api.ContainerMetadata(name="app"), image=api.ImageSpec(image="busybox:1.36"),
        labels={labels.CONTAINER_NAME: "app"}, annotations={labels.RESTART_COUNT: "0"}),
        config)
    await runtime.start_container(cid)
    reply = await runtime.pod_sandbox_status(sandbox_id)
    status = compute(pod("app"), list(reply.containers_statuses), reply.status)
    assert status["phase"] == "Running"
    assert status["podIP"].startswith("10.88.0.")
    assert cstatus(status, "app")["containerID"] == f"containerd://{cid}"
    runtime.exit_container(cid, 1)
    reply = await runtime.pod_sandbox_status(sandbox_id)
    failed = compute(pod("app", policy="Never"), list(reply.containers_statuses), reply.status,
                     previous=status)
    assert failed["phase"] == "Failed"
    assert cstatus(failed, "app")["state"]["terminated"]["reason"] == "Error"


async def test_statuses_survive_the_apiserver_unchanged() -> None:
    """PATCHed through the pods/status strategy and read back, a status compares equal, so the
    agent does not PATCH again on the next sync."""
    storage = MemoryStorage()
    info = lookup("", "v1", "pods")
    assert info is not None
    cache = WatchCache(storage, info.key_prefix)
    cache.start()
    store = Store(info, storage, cache)
    try:
        await store.create("default", pod("app", init=("setup",)))
        steps: list[tuple[list[api.ContainerStatus], dict[str, tuple[str, str]]]] = [
            ([], {}), ([ctr("setup", EXITED)], {}),
            ([ctr("setup", EXITED), ctr("app", RUNNING)], {}),
            ([ctr("setup", EXITED), ctr("app", EXITED, exit_code=1)],
             {"app": ("CrashLoopBackOff", BACKOFF)})]
        for runtime, waiting in steps:
            current = await store.get("default", "web")
            new = compute(current, runtime, sandbox(), previous=current["status"],
                          waiting=waiting)
            assert status_changed(current["status"], new)
            body = merge_patch_for(current["status"], new, uid=current["metadata"]["uid"])
            await store.update("default", "web", apply_merge_patch(current, body),
                               subresource="status")
            stored = await store.get("default", "web")
            assert not status_changed(stored["status"], new)
        assert kubectl_status(stored, stored["status"]) == "CrashLoopBackOff"
    finally:
        await cache.stop()
