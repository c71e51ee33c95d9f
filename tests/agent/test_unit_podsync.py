"""Runtime actions of one pod's sync over the fake CRI, with a fake clock, and the pod status
they lead to: sandbox and containers, init containers in order, restart policies,
CrashLoopBackOff timing, spec changes, adoption after an agent restart, and deletion."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent import labels
from agent.config import AgentConfig
from agent.image_pulls import ImageManager
from agent.podsync import PodSyncer, SyncResult
from agent.status import compute_pod_status, go_duration
from agent.volumes import VolumeManager
from controlplane.client.events import FakeRecorders
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

IMAGES = ["localhost/pause:1", "localhost/busybox:1"]
Object = dict[str, Any]


class Clock:
    """Seconds for the agent, nanoseconds for the fake runtime: one time for both."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t

    def ns(self) -> int:
        return int(self.t * 1e9)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Env:
    runtime: FakeRuntime
    clock: Clock
    recorders: FakeRecorders
    syncer: PodSyncer
    tmp: Path

    def restart_agent(self) -> Env:
        """A new agent (nothing in memory) over the same runtime, as after `kill -9`."""
        return make_env(self.tmp, self.runtime, self.clock)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.recorders.events]


def make_env(tmp: Path, runtime: FakeRuntime | None = None, clock: Clock | None = None) -> Env:
    clock = clock or Clock()
    runtime = runtime or FakeRuntime(images=IMAGES, clock=clock.ns)
    recorders = FakeRecorders()
    recorder = recorders.recorder("kubelet")
    config = AgentConfig(node_name="n1", node_ip="10.0.0.1", containerd="fake",
                         root_dir=tmp / "root", log_dir=tmp / "logs")
    volumes = VolumeManager(config.pods_dir, configmap=lambda ns, n: None,
                            secret=lambda ns, n: None, node_name="n1")
    images = ImageManager(runtime, recorder, secret=lambda ns, n: None, clock=clock)
    syncer = PodSyncer(runtime, config, images=images, volumes=volumes, recorder=recorder,
                       configmap=lambda ns, n: None, secret=lambda ns, n: None,
                       services=lambda ns: [], liveness_failed=lambda uid, name: False,
                       node_allocatable=lambda: {}, clock=clock)
    return Env(runtime, clock, recorders, syncer, tmp)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


def container(name: str, **extra: Any) -> Object:
    return {"name": name, "image": "localhost/busybox:1", "command": ["sleep", "3600"], **extra}


def make_pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always",
             uid: str = "uid-1", **spec: Any) -> Object:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": uid},
            "spec": {"nodeName": "n1", "restartPolicy": policy,
                     "containers": [container(n) for n in names],
                     **({"initContainers": [container(n) for n in init]} if init else {}),
                     **spec},
            "status": {"phase": "Pending"}}


async def sync(env: Env, pod: Object) -> SyncResult:
    """One sync, and the status the agent would PATCH written back into `pod`."""
    result = await env.syncer.sync(pod)
    pod["status"] = compute_pod_status(
        pod, sandbox=result.sandbox, containers=result.containers, waiting=result.waiting,
        ready={}, started={}, host_ip="10.0.0.1", now="2024-01-01T00:00:00Z",
        previous=pod.get("status"))
    return result


def live(result: SyncResult, name: str) -> api.ContainerStatus:
    """The newest attempt of container `name` in the runtime."""
    mine = [c for c in result.containers if c.labels.get(labels.CONTAINER_NAME) == name]
    return max(mine, key=lambda c: int(c.annotations[labels.RESTART_COUNT]))


def state_of(pod: Object, name: str, field: str = "containerStatuses") -> Object:
    status = next(s for s in pod["status"][field] if s["name"] == name)
    return dict(status)


# -- starting ----------------------------------------------------------------------------------


async def test_first_sync_starts_sandbox_and_containers(env: Env) -> None:
    pod = make_pod("app", "side")
    result = await sync(env, pod)
    assert len(env.runtime.called("run_pod_sandbox")) == 1
    assert [c[1] for c in env.runtime.called("create_container")] == ["app", "side"]
    assert all(c.state == api.CONTAINER_RUNNING for c in result.containers)
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"].startswith("10.88.0.")
    assert env.reasons() == ["Pulled", "Created", "Started", "Pulled", "Created", "Started"]
    # a second sync with nothing changed does nothing to the runtime
    before = len(env.runtime.calls)
    await sync(env, pod)
    mutations = {"run_pod_sandbox", "create_container", "start_container", "stop_container",
                 "remove_container", "stop_pod_sandbox", "remove_pod_sandbox"}
    assert not [c for c in env.runtime.calls[before:] if c[0] in mutations]


async def test_sandbox_labels_let_the_agent_find_the_pod(env: Env) -> None:
    pod = make_pod("app")
    await sync(env, pod)
    [sandbox] = await env.runtime.list_pod_sandbox()
    assert sandbox.labels[labels.POD_UID] == "uid-1"
    assert sandbox.labels[labels.MANAGED_BY] == "true"
    [ctr] = await env.runtime.list_containers()
    assert ctr.labels[labels.CONTAINER_NAME] == "app" and ctr.labels[labels.POD_UID] == "uid-1"


async def test_a_dead_sandbox_is_replaced_with_a_new_attempt(env: Env) -> None:
    pod = make_pod("app")
    result = await sync(env, pod)
    assert result.sandbox is not None
    env.runtime.exit_sandbox(result.sandbox.id)
    result = await sync(env, pod)
    sandboxes = await env.runtime.list_pod_sandbox()
    assert [s.metadata.attempt for s in sandboxes] == [1]  # the old one removed
    assert result.sandbox is not None and result.sandbox.state == api.SANDBOX_READY


# -- init containers ---------------------------------------------------------------------------


async def test_init_containers_run_one_at_a_time_in_order(env: Env) -> None:
    pod = make_pod("app", init=("first", "second"))
    result = await sync(env, pod)
    assert [c[1] for c in env.runtime.called("create_container")] == ["first"]
    assert pod["status"]["phase"] == "Pending"
    assert state_of(pod, "app")["state"] == {"waiting": {"reason": "PodInitializing"}}
    result = await sync(env, pod)  # still running: nothing else starts
    assert len(env.runtime.called("create_container")) == 1
    env.runtime.exit_container(live(result, "first").id, 0)
    result = await sync(env, pod)
    assert [c[1] for c in env.runtime.called("create_container")] == ["first", "second"]
    env.runtime.exit_container(live(result, "second").id, 0)
    await sync(env, pod)
    assert [c[1] for c in env.runtime.called("create_container")] == ["first", "second", "app"]
    assert pod["status"]["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Initialized"] == "True"
    assert [s["name"] for s in pod["status"]["initContainerStatuses"]] == ["first", "second"]
    await sync(env, pod)  # succeeded init containers never run again
    assert len(env.runtime.called("create_container")) == 3


async def test_failed_init_container_fails_a_never_pod(env: Env) -> None:
    pod = make_pod("app", init=("setup",), policy="Never")
    result = await sync(env, pod)
    env.runtime.exit_container(live(result, "setup").id, 2)
    await sync(env, pod)
    await sync(env, pod)
    assert [c[1] for c in env.runtime.called("create_container")] == ["setup"]
    assert pod["status"]["phase"] == "Failed"
    terminated = state_of(pod, "setup", "initContainerStatuses")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (2, "Error")


async def test_failed_init_container_is_retried_with_backoff(env: Env) -> None:
    pod = make_pod("app", init=("setup",), policy="OnFailure")
    result = await sync(env, pod)
    env.runtime.exit_container(live(result, "setup").id, 1)
    result = await sync(env, pod)  # the first restart is immediate
    assert [c[2] for c in env.runtime.called("create_container")] == [0, 1]
    env.runtime.exit_container(live(result, "setup").id, 1)
    result = await sync(env, pod)
    assert result.waiting["setup"][0] == "CrashLoopBackOff"
    assert len(env.runtime.called("create_container")) == 2
    assert pod["status"]["phase"] == "Pending"


# -- restart policies and CrashLoopBackOff -----------------------------------------------------


@pytest.mark.parametrize(("policy", "code", "restarted"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 1, True),
    ("Never", 0, False), ("Never", 1, False)])
async def test_restart_policy(env: Env, policy: str, code: int, restarted: bool) -> None:
    pod = make_pod("app", policy=policy)
    result = await sync(env, pod)
    env.runtime.exit_container(live(result, "app").id, code)
    result = await sync(env, pod)
    assert len(env.runtime.called("create_container")) == (2 if restarted else 1)
    if restarted:
        assert state_of(pod, "app")["restartCount"] == 1
        assert pod["status"]["phase"] == "Running"
    else:
        assert pod["status"]["phase"] == ("Succeeded" if code == 0 else "Failed")


async def test_crash_loop_backoff_doubles_from_10s(env: Env) -> None:
    pod = make_pod("app")
    result = await sync(env, pod)
    waits = []
    for attempt in range(1, 6):
        env.clock.advance(1)  # each run lasts one second
        env.runtime.exit_container(live(result, "app").id, 1)
        result = await sync(env, pod)
        if attempt == 1:  # the first restart is immediate
            assert live(result, "app").state == api.CONTAINER_RUNNING
            continue
        reason, message = result.waiting["app"]
        assert reason == "CrashLoopBackOff"
        assert state_of(pod, "app")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert result.retry_after is not None
        waits.append(round(result.retry_after))
        assert message.startswith(f"back-off {go_duration(waits[-1])} restarting failed "
                                  "container=app pod=web_default(uid-1)")
        env.clock.advance(result.retry_after - 0.5)
        result = await sync(env, pod)
        assert "app" in result.waiting, "restarted before the back-off ended"
        env.clock.advance(0.5)
        result = await sync(env, pod)
        assert live(result, "app").state == api.CONTAINER_RUNNING
        assert int(live(result, "app").annotations[labels.RESTART_COUNT]) == attempt
    assert waits == [10, 20, 40, 80]
    assert "BackOff" in env.reasons()


async def test_crash_loop_backoff_is_capped_at_5_minutes_and_reset_after_10(env: Env) -> None:
    pod = make_pod("app")
    result = await sync(env, pod)
    for _ in range(8):
        env.runtime.exit_container(live(result, "app").id, 1)
        result = await sync(env, pod)
        env.clock.advance(result.retry_after or 0)
        result = await sync(env, pod)
    env.runtime.exit_container(live(result, "app").id, 1)
    result = await sync(env, pod)
    assert result.waiting["app"][1].startswith("back-off 5m0s restarting failed container=app")
    env.clock.advance(300)
    result = await sync(env, pod)
    env.clock.advance(601)  # ran for more than 10 minutes: restarted at once, back-off reset
    env.runtime.exit_container(live(result, "app").id, 1)
    result = await sync(env, pod)
    assert live(result, "app").state == api.CONTAINER_RUNNING
    env.runtime.exit_container(live(result, "app").id, 1)
    result = await sync(env, pod)
    assert result.waiting["app"][1].startswith("back-off 10s ")


# -- changes -----------------------------------------------------------------------------------


async def test_changed_container_spec_replaces_the_container(env: Env) -> None:
    pod = make_pod("app")
    result = await sync(env, pod)
    first = live(result, "app").id
    changed = copy.deepcopy(pod)
    changed["spec"]["containers"][0]["command"] = ["sleep", "7200"]
    result = await sync(env, changed)
    assert env.runtime.called("stop_container")[0][0] == first
    new = live(result, "app")
    assert new.id != first and new.state == api.CONTAINER_RUNNING
    assert int(new.annotations[labels.RESTART_COUNT]) == 1
    assert any(e.reason == "Killing" and "spec changed" in e.message
               for e in env.recorders.events)


async def test_failed_start_is_reported_and_retried(env: Env) -> None:
    from cri import errors

    pod = make_pod("app")
    env.runtime.fail_next("start_container", errors.CRIError(
        "fake", "RuntimeService/StartContainer", None, 'exec: "nope": not found'))
    result = await sync(env, pod)
    assert result.waiting["app"][0] == "RunContainerError"
    assert result.retry_after == 10.0
    result = await sync(env, pod)  # the created container is started, not created again
    assert len(env.runtime.called("create_container")) == 1
    assert live(result, "app").state == api.CONTAINER_RUNNING


# -- adoption after a restart of the agent -----------------------------------------------------


async def test_a_restarted_agent_adopts_what_runs(env: Env) -> None:
    pod = make_pod("app", init=("setup",))
    result = await sync(env, pod)
    env.runtime.exit_container(live(result, "setup").id, 0)
    await sync(env, pod)
    before = len(env.runtime.calls)
    fresh = env.restart_agent()
    result = await sync(fresh, pod)
    created = [c for c in env.runtime.calls[before:]
               if c[0] in ("run_pod_sandbox", "create_container", "start_container")]
    assert created == []  # nothing started twice, the init container not run again
    assert pod["status"]["phase"] == "Running"
    assert state_of(pod, "app")["containerID"] == f"containerd://{live(result, 'app').id}"


async def test_restarted_agent_keeps_counting_restarts_from_the_labels(env: Env) -> None:
    pod = make_pod("app")
    result = await sync(env, pod)
    env.runtime.exit_container(live(result, "app").id, 1)
    await sync(env, pod)  # restart count 1
    fresh = env.restart_agent()
    result = await sync(fresh, pod)
    env.runtime.exit_container(live(result, "app").id, 1)
    result = await sync(fresh, pod)
    assert int(live(result, "app").annotations[labels.RESTART_COUNT]) == 2


# -- stopping ----------------------------------------------------------------------------------


async def test_deletion_runs_pre_stop_then_stops_with_the_grace_period(env: Env) -> None:
    pod = make_pod("app")
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["drain"]}}}
    result = await sync(env, pod)
    cid = live(result, "app").id
    await env.syncer.kill_pod(pod, "uid-1", 30)
    names = [c[0] for c in env.runtime.calls]
    assert names.index("exec_sync") < names.index("stop_container")
    assert env.runtime.called("exec_sync") == [(cid, ("drain",))]
    assert env.runtime.called("stop_container") == [(cid, 30)]
    [sandbox] = await env.runtime.list_pod_sandbox()
    assert sandbox.state == api.SANDBOX_NOTREADY
    assert "Killing" in env.reasons()
    await env.syncer.remove_pod("uid-1")
    assert await env.runtime.list_pod_sandbox() == []
    assert await env.runtime.list_containers() == []
    assert not (env.tmp / "root" / "pods" / "uid-1").exists()


async def test_orphans_of_unknown_pods_are_killed_without_grace(env: Env) -> None:
    pod = make_pod("app")
    result = await sync(env, pod)
    fresh = env.restart_agent()
    await fresh.syncer.kill_pod(None, "uid-1", 0)  # the pod was deleted while we were down
    await fresh.syncer.remove_pod("uid-1")
    assert env.runtime.called("stop_container") == [(live(result, "app").id, 0)]
    assert await env.runtime.list_containers() == []


async def test_terminal_pod_gets_no_new_sandbox(env: Env) -> None:
    pod = make_pod("app", policy="Never")
    result = await sync(env, pod)
    env.runtime.exit_container(live(result, "app").id, 0)
    await sync(env, pod)
    assert pod["status"]["phase"] == "Succeeded"
    await env.syncer.kill_pod(pod, "uid-1", 0)  # what the agent does for a finished pod
    await sync(env, pod)
    assert len(env.runtime.called("run_pod_sandbox")) == 1
    assert pod["status"]["phase"] == "Succeeded"


# -- status transitions ------------------------------------------------------------------------


async def test_status_moves_from_pull_errors_to_running_to_failed(env: Env) -> None:
    from cri import errors

    pod = make_pod("app", policy="Never")
    pod["spec"]["containers"][0]["image"] = "example.test/app:1"
    env.runtime.fail_pulls["example.test/app:1"] = errors.NotFound(
        "fake", "ImageService/PullImage", None, "example.test/app:1: not found")
    result = await sync(env, pod)
    assert state_of(pod, "app")["state"]["waiting"]["reason"] == "ErrImagePull"
    assert pod["status"]["phase"] == "Pending"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "False",
        "ContainersReady": "False", "PodScheduled": "True"}
    result = await sync(env, pod)
    assert state_of(pod, "app")["state"]["waiting"] == {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "example.test/app:1"'}
    del env.runtime.fail_pulls["example.test/app:1"]
    env.clock.advance(10)
    result = await sync(env, pod)
    assert pod["status"]["phase"] == "Running"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    env.runtime.exit_container(live(result, "app").id, 7)
    await sync(env, pod)
    assert pod["status"]["phase"] == "Failed"
    terminated = state_of(pod, "app")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (7, "Error")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready.get("reason")) == ("False", "PodFailed")
