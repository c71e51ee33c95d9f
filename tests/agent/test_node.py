"""Unit tests of the agent's node management over a recording API fake, the fake CRI and a fake
machine: registration and adoption, conditions from measurements, when status is posted, the
lease, the CNI config once the pod CIDR is known, and surviving API and runtime failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from agent.main import main as agent_main
from agent.node import (
    FakeMachine,
    FsStats,
    HostMachine,
    NodeConfig,
    NodeManager,
    conditions,
    parse_taint,
    parse_taints,
    status,
)
from agent.node.lease import micro_time
from controlplane.api import errors
from controlplane.api.patch import apply_merge_patch, apply_strategic_merge_patch, schema_for
from controlplane.client.rest import LEASES, NODES, Resource, RESTClient
from controlplane.controllers.testing import FakeClient
from cri import errors as cri_errors
from cri.fake import FakeRuntime

Object = dict[str, Any]
T0 = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
MI = 1024 ** 2
GI = 1024 ** 3
NOT_READY_NO_CIDR = ("network not ready: no pod CIDR assigned to the node yet "
                     "(spec.podCIDR is empty), so no CNI config is written")


class API(FakeClient):
    """FakeClient that applies patches (as the apiserver would), fails calls once on request,
    and serves a watch from a queue (None ends the stream)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_once: dict[tuple[str, str], Exception] = {}
        self.watch_events: asyncio.Queue[Object | None] = asyncio.Queue()
        self.watches: list[str] = []  # the resourceVersion each watch started from

    def _record(self, verb: str, res: Resource, namespace: str, name: str, sub: str = "",
                body: Any = None, patch_type: str = "") -> None:
        key = (verb, f"{res.resource}/{sub}" if sub else res.resource)
        error = self.fail_once.pop(key, None)
        super()._record(verb, res, namespace, name, sub, body, patch_type)
        if error is not None:
            raise error

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str = "", *,
                    subresource: str = "", patch_type: str = "application/merge-patch+json",
                    field_manager: str = "") -> Object:
        self._record("patch", res, namespace, name, subresource, patch, patch_type)
        key = (res.resource, namespace, name)
        if key not in self.objects:
            raise errors.NotFound(f'{res.resource} "{name}" not found')
        current = self.objects[key]
        if patch_type == "application/strategic-merge-patch+json":
            schema = schema_for("", "v1", "Node")
            assert schema is not None
            new = apply_strategic_merge_patch(current, patch, schema)
        else:
            new = apply_merge_patch(current, patch)
        new["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        self.objects[key] = new
        copied: Object = json.loads(json.dumps(new))
        return copied

    async def watch(self, res: Resource, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    timeout_seconds: int = 300) -> AsyncIterator[Object]:
        self.watches.append(resource_version)
        while (event := await self.watch_events.get()) is not None:
            yield event

    def node(self, name: str = "n1") -> Object:
        return self.objects[("nodes", "", name)]

    def status_posts(self) -> list[Object]:
        return [c.body["status"] for c in self.calls
                if c.verb == "patch" and c.resource == "nodes/status"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class World:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.api = API()
        self.runtime = FakeRuntime(images={"localhost/pause:1": 300_000,
                                           "localhost/busybox:1": 1_200_000})
        self.machine = FakeMachine()
        self.clock = Clock()
        defaults: Object = dict(node_name="n1", node_ip="10.0.0.5", root_dir=tmp_path / "root",
                                cni_conf_dir=tmp_path / "net.d", clock=self.clock,
                                kubelet_port=10250, status_update_frequency=0.01,
                                lease_renew_interval=0.01, retry_interval=0.01)
        self.config = NodeConfig(**{**defaults, **config})
        self.manager = NodeManager(cast(RESTClient, self.api), self.runtime, self.config,
                                   machine=self.machine)

    def conditions(self, node: Object | None = None) -> dict[str, Object]:
        node = node if node is not None else self.api.node()
        return {c["type"]: c for c in node["status"]["conditions"]}

    def conflist(self) -> Object:
        path = self.config.cni_conf_dir / "10-pinnace.conflist"
        loaded: Object = json.loads(path.read_text())
        return loaded


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, pod_cidr="10.244.1.0/24")


# -- registration -------------------------------------------------------------------------------


async def test_register_creates_the_node_with_labels_taints_cidr_and_status(
        tmp_path: Path) -> None:
    w = World(tmp_path, pod_cidr="10.244.1.0/24", labels={"topology.kubernetes.io/zone": "a"},
              register_with_taints=[parse_taint("dedicated=infra:NoSchedule")])
    await w.manager.register()
    created = w.api.bodies("create", "nodes")[0]
    assert created["metadata"]["labels"] == {
        "kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": "a"}
    assert created["spec"] == {
        "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
        "taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}
    node_status = w.api.node()["status"]
    assert node_status["addresses"] == [{"type": "InternalIP", "address": "10.0.0.5"},
                                        {"type": "Hostname", "address": "n1"}]
    assert node_status["capacity"] == {"cpu": "2", "memory": "8Gi", "pods": "110",
                                       "ephemeral-storage": "100Gi"}
    assert node_status["allocatable"] == {"cpu": "2", "memory": "8092Mi", "pods": "110",
                                          "ephemeral-storage": "90Gi"}
    assert w.manager.allocatable() == node_status["allocatable"]
    assert node_status["nodeInfo"] == {
        "machineID": "m-1", "systemUUID": "u-1", "bootID": "b-1", "kernelVersion": "6.1.0-test",
        "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "fake://0.0.0",
        "kubeletVersion": "v1.32.4-pinnace", "kubeProxyVersion": "", "operatingSystem": "linux",
        "architecture": "amd64"}
    assert node_status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert [(i["names"][-1], i["sizeBytes"]) for i in node_status["images"]] == [
        ("localhost/busybox:1", 1_200_000), ("localhost/pause:1", 300_000)]
    got = w.conditions()
    assert [c["type"] for c in node_status["conditions"]] == [
        "MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert got["Ready"] == {"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": "2025-01-01T12:00:00Z",
                            "lastTransitionTime": "2025-01-01T12:00:00Z"}
    assert (got["MemoryPressure"]["status"], got["MemoryPressure"]["reason"]) == (
        "False", "KubeletHasSufficientMemory")
    assert got["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert got["PIDPressure"]["message"] == "kubelet has sufficient PID available"
    bridge = w.conflist()["plugins"][0]
    assert (w.conflist()["name"], bridge["bridge"]) == ("pinnace-n1", "cni0")
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "root" / "cni" / "networks")


async def test_without_a_pod_cidr_the_node_is_not_ready_until_spec_pod_cidr_arrives(
        tmp_path: Path) -> None:
    w = World(tmp_path)
    await w.manager.register()
    ready = w.conditions()["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "KubeletNotReady", NOT_READY_NO_CIDR)
    assert not (tmp_path / "net.d").exists()
    # The node IPAM controller assigns a CIDR: the watch delivers it.
    w.clock.advance(3)
    assigned = json.loads(json.dumps(w.api.node()))
    assigned["spec"] = {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24"]}
    assigned["metadata"]["resourceVersion"] = "10"
    w.api.seed(NODES, assigned)
    await w.manager.handle_node_event({"type": "MODIFIED", "object": assigned})
    assert w.conflist()["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.7.0/24"}]]
    assert w.manager._poke.is_set()
    assert await w.manager.sync_node_status()
    ready = w.conditions()["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    assert ready["lastTransitionTime"] == "2025-01-01T12:00:03Z"


async def test_adopting_an_existing_node_updates_labels_and_keeps_its_spec(
        world: World) -> None:
    world.api.seed(NODES, {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "uid": "uid-n1", "resourceVersion": "5",
                     "labels": {"kubernetes.io/hostname": "old-name", "team": "blue",
                                "kubernetes.io/os": "linux"}},
        "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"],
                 "unschedulable": True,
                 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
        "status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"},
                                 {"type": "InternalIP", "address": "10.0.0.99"}],
                   "conditions": [{"type": "NetworkUnavailable", "status": "False"}]}})
    await world.manager.register()
    assert world.api.actions() == [("create", "nodes", "n1"), ("patch", "nodes", "n1"),
                                   ("patch", "nodes/status", "n1")]
    assert world.api.bodies("patch", "nodes")[0] == {"metadata": {"labels": {
        "kubernetes.io/hostname": "n1", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}}}
    node = world.api.node()
    assert node["metadata"]["labels"]["team"] == "blue"
    assert node["spec"]["unschedulable"] is True and node["spec"]["podCIDR"] == "10.244.9.0/24"
    assert node["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.5"},
                                           {"type": "Hostname", "address": "n1"}]
    assert sorted(c["type"] for c in node["status"]["conditions"]) == [  # others' kept
        "DiskPressure", "MemoryPressure", "NetworkUnavailable", "PIDPressure", "Ready"]
    # The node's own CIDR wins over --pod-cidr.
    assert world.conflist()["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.9.0/24"}]]


async def test_adopting_a_node_without_a_cidr_sets_the_override(world: World) -> None:
    world.api.seed(NODES, {"metadata": {"name": "n1", "uid": "uid-n1", "resourceVersion": "1",
                                        "labels": status.default_labels("n1", "amd64")},
                           "spec": {}})
    await world.manager.register()
    assert world.api.bodies("patch", "nodes") == [
        {"spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}}]


async def test_registration_retries_until_the_apiserver_answers(world: World) -> None:
    world.api.fail_once[("create", "nodes")] = errors.ServiceUnavailable("apiserver down")
    await world.manager.register()
    assert [a for a in world.api.actions() if a[1] == "nodes"] == [
        ("create", "nodes", "n1"), ("create", "nodes", "n1")]
    assert world.conditions()["Ready"]["status"] == "True"


# -- conditions -----------------------------------------------------------------------------------

PRESSURES = [
    pytest.param(dict(memory_available=50 * MI), "MemoryPressure",
                 "KubeletHasInsufficientMemory", "kubelet has insufficient memory available",
                 id="memory.available<100Mi"),
    pytest.param(dict(nodefs=FsStats(100 * GI, 9 * GI, 1000, 900)), "DiskPressure",
                 "KubeletHasDiskPressure", "kubelet has disk pressure",
                 id="nodefs.available<10%"),
    pytest.param(dict(nodefs=FsStats(100 * GI, 50 * GI, 1000, 40)), "DiskPressure",
                 "KubeletHasDiskPressure", "kubelet has disk pressure",
                 id="nodefs.inodesFree<5%"),
    pytest.param(dict(imagefs=FsStats(100 * GI, 14 * GI, 1000, 900)), "DiskPressure",
                 "KubeletHasDiskPressure", "kubelet has disk pressure",
                 id="imagefs.available<15%"),
]


@pytest.mark.parametrize(("measured", "condition", "reason", "message"), PRESSURES)
async def test_pressure_conditions_follow_the_kubelets_hard_thresholds(
        world: World, measured: Object, condition: str, reason: str, message: str) -> None:
    await world.manager.register()
    for name, value in measured.items():
        setattr(world.machine, name, value)
    world.clock.advance(10)
    assert await world.manager.sync_node_status()
    got = world.conditions()
    assert (got[condition]["status"], got[condition]["reason"], got[condition]["message"]) == (
        "True", reason, message)
    assert got[condition]["lastTransitionTime"] == "2025-01-01T12:00:10Z"
    assert got["Ready"]["status"] == "True"  # pressure does not make a node NotReady
    others = {c["type"] for c in got.values() if c["status"] == "True"} - {condition, "Ready"}
    assert others == set()


async def test_imagefs_is_measured_where_the_runtime_keeps_its_images(world: World) -> None:
    await world.manager.register()
    assert world.machine.samples[-1][1].endswith("io.containerd.snapshotter.v1.overlayfs")


async def test_pid_pressure_only_with_a_pid_threshold_as_the_kubelet(tmp_path: Path) -> None:
    busy = dict(pid_max=1000, pids_running=990)
    default = World(tmp_path / "a", pod_cidr="10.244.1.0/24")
    configured = World(tmp_path / "b", pod_cidr="10.244.1.0/24",
                       eviction_hard={**conditions.DEFAULT_EVICTION_HARD, "pid.available": "5%"})
    for w in (default, configured):
        for name, value in busy.items():
            setattr(w.machine, name, value)
        await w.manager.register()
    assert default.conditions()["PIDPressure"]["status"] == "False"
    pid = configured.conditions()["PIDPressure"]
    assert (pid["status"], pid["reason"], pid["message"]) == (
        "True", "KubeletHasInsufficientPID", "kubelet has insufficient PID available")


async def test_pressure_stays_for_the_transition_period_after_recovery(world: World) -> None:
    world.machine.memory_available = 10 * MI
    await world.manager.register()
    assert world.conditions()["MemoryPressure"]["status"] == "True"
    world.machine.memory_available = 4 * GI
    world.clock.advance(299)
    await world.manager.sync_node_status()
    assert world.conditions()["MemoryPressure"]["status"] == "True"
    world.clock.advance(1)
    assert await world.manager.sync_node_status()
    memory = world.conditions()["MemoryPressure"]
    assert (memory["status"], memory["reason"], memory["lastTransitionTime"]) == (
        "False", "KubeletHasSufficientMemory", "2025-01-01T12:05:00Z")


async def test_cni_not_initialized_makes_the_node_not_ready_with_the_runtime_message(
        world: World) -> None:
    world.runtime.network_ready = False
    await world.manager.register()
    ready = world.conditions()["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "KubeletNotReady",
        "container runtime network not ready: NetworkReady=false "
        "reason:NetworkPluginNotReady message:cni plugin not initialized")


async def test_runtime_errors_are_aggregated_as_the_kubelet_prints_them(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.runtime.runtime_ready = False
    w.runtime.network_ready = False
    await w.manager.register()
    assert w.conditions()["Ready"]["message"] == (
        "[container runtime status check may not have completed yet, container runtime not "
        "ready: RuntimeReady=false reason: message:, container runtime network not ready: "
        "NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized, "
        f"{NOT_READY_NO_CIDR}]")


async def test_a_runtime_that_does_not_answer_for_two_minutes_is_down(world: World) -> None:
    await world.manager.register()
    hung = cri_errors.DeadlineExceeded("fake", "RuntimeService/Status",
                                       grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
    world.clock.advance(119)
    world.runtime.fail_next("status", hung)
    await world.manager.sync_node_status()
    assert world.conditions()["Ready"]["status"] == "True"  # within the 2 minute threshold
    world.clock.advance(1)
    world.runtime.fail_next("status", hung)
    assert await world.manager.sync_node_status()
    ready = world.conditions()["Ready"]
    assert (ready["status"], ready["message"], ready["lastTransitionTime"]) == (
        "False", "container runtime is down", "2025-01-01T12:02:00Z")
    # containerd comes back: Ready again, the version and images still reported.
    world.clock.advance(10)
    assert await world.manager.sync_node_status()
    assert world.conditions()["Ready"]["status"] == "True"
    assert world.api.node()["status"]["nodeInfo"]["containerRuntimeVersion"] == "fake://0.0.0"


async def test_an_unreachable_runtime_is_down_at_once_and_ready_follows_it(
        tmp_path: Path) -> None:
    w = World(tmp_path, pod_cidr="10.244.1.0/24", runtime_check_interval=0.01,
              status_update_frequency=3600)
    gone = cri_errors.Unavailable("fake", "RuntimeService/Status", grpc.StatusCode.UNAVAILABLE,
                                  "connection refused")
    await w.manager.register()
    assert w.conditions()["Ready"]["status"] == "True"
    original = w.runtime.status

    async def refused(**kwargs: Any) -> Any:
        raise gone

    w.runtime.status = refused  # type: ignore[method-assign]
    task = asyncio.create_task(w.manager.run())
    try:
        # The runtime check pokes the status loop: no wait for the (hour-long) status period.
        for _ in range(300):
            if w.conditions()["Ready"]["status"] == "False":
                break
            await asyncio.sleep(0.01)
        ready = w.conditions()["Ready"]
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "False", "KubeletNotReady", "container runtime is down: connection refused")
        w.runtime.status = original  # type: ignore[method-assign]
        for _ in range(300):
            if w.conditions()["Ready"]["status"] == "True":
                break
            await asyncio.sleep(0.01)
        assert w.conditions()["Ready"]["message"] == "kubelet is posting ready status"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_missing_cni_plugins_keep_the_node_not_ready(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "bridge").touch()
    w = World(tmp_path, pod_cidr="10.244.1.0/24", cni_bin_dir=tmp_path / "bin")
    await w.manager.register()
    assert w.conditions()["Ready"]["message"] == (
        f"network not ready: CNI plugins missing from {tmp_path / 'bin'}: host-local, portmap")


# -- when status is posted ------------------------------------------------------------------------


async def test_status_is_posted_on_change_and_every_five_minutes(world: World) -> None:
    await world.manager.register()
    assert len(world.api.status_posts()) == 1
    for _ in range(5):
        world.clock.advance(10)
        assert not await world.manager.sync_node_status()
    assert len(world.api.status_posts()) == 1
    world.machine.cpus = 1  # the agent's cpuset shrank: capacity changed
    world.clock.advance(10)
    assert await world.manager.sync_node_status()
    assert world.api.node()["status"]["capacity"]["cpu"] == "1"
    world.clock.advance(290)
    assert not await world.manager.sync_node_status()
    world.clock.advance(10)  # five minutes since the last post
    assert await world.manager.sync_node_status()
    ready = world.conditions()["Ready"]
    assert ready["lastHeartbeatTime"] == "2025-01-01T12:06:00Z"
    assert ready["lastTransitionTime"] == "2025-01-01T12:00:00Z"


async def test_a_new_image_is_a_status_change(world: World) -> None:
    await world.manager.register()
    await world.runtime.pull_image("localhost/app:2")
    world.clock.advance(10)
    assert await world.manager.sync_node_status()
    names = [n for i in world.api.node()["status"]["images"] for n in i["names"]]
    assert "localhost/app:2" in names


async def test_a_condition_someone_else_changed_is_reposted(world: World) -> None:
    await world.manager.register()
    node = world.api.node()
    for c in node["status"]["conditions"]:  # the node lifecycle controller's mark
        c.update(status="Unknown", reason="NodeStatusUnknown",
                 message="Kubelet stopped posting node status.")
    node["metadata"]["resourceVersion"] = "50"
    await world.manager.handle_node_event({"type": "MODIFIED", "object": node})
    world.clock.advance(10)
    assert await world.manager.sync_node_status()
    ready = world.conditions()["Ready"]
    assert (ready["status"], ready["lastTransitionTime"]) == ("True", "2025-01-01T12:00:10Z")


def test_status_patch_deletes_address_types_no_longer_reported() -> None:
    current = {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"},
                             {"type": "Hostname", "address": "n1"}]}
    desired = {"addresses": [{"type": "Hostname", "address": "n1"}], "images": []}
    assert status.status_patch(current, desired) == {"status": {
        "addresses": [{"type": "Hostname", "address": "n1"},
                      {"type": "ExternalIP", "$patch": "delete"}],
        "images": []}}


def test_images_are_the_fifty_biggest_with_five_names_each() -> None:
    from cri.v1 import api_pb2 as api

    images = [api.Image(id=f"sha256:{i}", repo_tags=[f"r/{i}:{t}" for t in range(7)],
                        size=i) for i in range(60)]
    reported = status.node_images(images)
    assert len(reported) == 50 and reported[0]["sizeBytes"] == 59
    assert reported[0]["names"] == [f"r/59:{t}" for t in range(5)]


@pytest.mark.parametrize(("n", "text"), [
    (0, "0"), (1000, "1000"), (1024, "1Ki"), (8148004 * 1024, "8148004Ki"), (8 * GI, "8Gi"),
    (93492209510, "93492209510"), (100 * MI, "100Mi")])
def test_bytes_print_as_binary_si_quantities(n: int, text: str) -> None:
    assert status.format_bytes(n) == text


def test_taints_parse_as_the_kubelet_flag() -> None:
    assert parse_taint("a=b:NoExecute") == {"key": "a", "value": "b", "effect": "NoExecute"}
    assert parse_taint("a:NoSchedule") == {"key": "a", "effect": "NoSchedule"}
    with pytest.raises(ValueError, match="invalid taint"):
        parse_taint("a=b")
    assert parse_taints("") == []
    assert parse_taints("example.com/gpu=true:NoSchedule, b:PreferNoSchedule") == [
        {"key": "example.com/gpu", "value": "true", "effect": "NoSchedule"},
        {"key": "b", "effect": "PreferNoSchedule"}]


@pytest.mark.parametrize(("text", "fragment"), [
    ("a=b:Sometimes", "invalid taint effect: Sometimes, unsupported taint effect"),
    ("a:b:NoSchedule", "invalid taint spec: a:b:NoSchedule"),
    ("a=b=c:NoSchedule", "invalid taint spec: a=b=c:NoSchedule"),
    ("bad key!:NoSchedule", "invalid taint spec: bad key!:NoSchedule, name part must consist"),
    ("a=" + "v" * 64 + ":NoSchedule", "must be no more than 63 characters"),
    (":NoSchedule", "name part must be non-empty"),
    ("a:NoSchedule,a=x:NoSchedule", "duplicate taint a:NoSchedule"),
])
def test_bad_taints_are_refused_with_the_kubelets_words(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_taints(text)
    assert fragment in str(info.value)


def test_the_agent_refuses_bad_taints_and_providers_in_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = agent_main(["--kubeconfig", "/nonexistent", "--register-with-taints", "a=b"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("pinnace agent: invalid configuration: invalid taint spec: a=b")
    assert agent_main(["--kubeconfig", "/nonexistent", "--cloud-provider", "aws"]) == 1
    assert "unknown --cloud-provider 'aws'" in capsys.readouterr().err


# -- external cloud provider -------------------------------------------------------------------


async def test_external_cloud_provider_registers_tainted_for_the_cloud(tmp_path: Path) -> None:
    w = World(tmp_path, pod_cidr="10.244.1.0/24", cloud_provider="external",
              provided_node_ip="10.0.0.5",
              register_with_taints=parse_taints("dedicated=infra:NoExecute"))
    await w.manager.register()
    created = w.api.bodies("create", "nodes")[0]
    assert created["spec"]["taints"] == [
        {"key": "dedicated", "value": "infra", "effect": "NoExecute"},
        {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
         "effect": "NoSchedule"}]
    assert created["metadata"]["annotations"] == {
        "alpha.kubernetes.io/provided-node-ip": "10.0.0.5"}
    # The cloud-controller-manager initialises the node: providerID, its addresses, no taint.
    node = json.loads(json.dumps(w.api.node()))
    node["spec"] = {**node["spec"], "providerID": "local://n1",
                    "taints": [{"key": "dedicated", "value": "infra", "effect": "NoExecute"}]}
    node["status"]["addresses"] = [{"type": "InternalIP", "address": "10.0.0.5"},
                                   {"type": "ExternalIP", "address": "203.0.113.5"},
                                   {"type": "Hostname", "address": "n1.example"}]
    node["metadata"]["resourceVersion"] = "20"
    w.api.seed(NODES, node)
    await w.manager.handle_node_event({"type": "MODIFIED", "object": node})
    w.clock.advance(400)  # a report is due: the status is posted
    assert await w.manager.sync_node_status()
    after = w.api.node()
    assert after["status"]["addresses"] == node["status"]["addresses"]  # the cloud's kept
    assert after["spec"]["taints"] == node["spec"]["taints"]  # never re-added
    # A restarted agent adopts the node: the taint is not added again either.
    again = World(tmp_path, cloud_provider="external", provided_node_ip="10.0.0.5")
    again.api.seed(NODES, after)
    await again.manager.register()
    assert again.api.bodies("patch", "nodes") == []
    assert again.api.node()["spec"]["taints"] == node["spec"]["taints"]
    assert again.api.node()["status"]["addresses"] == node["status"]["addresses"]


async def test_without_a_cloud_provider_no_cloud_taint_and_our_addresses(world: World) -> None:
    await world.manager.register()
    created = world.api.bodies("create", "nodes")[0]
    assert "taints" not in created["spec"] and "annotations" not in created["metadata"]


def test_reported_addresses_with_an_external_cloud() -> None:
    cloud = [{"type": "ExternalIP", "address": "203.0.113.5"}]
    ours = [{"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "n1"}]
    assert status.reported_addresses("10.0.0.5", "n1", cloud, external_cloud=False,
                                     node_ip_given=True) == ours
    assert status.reported_addresses("10.0.0.5", "n1", cloud, external_cloud=True,
                                     node_ip_given=True) == cloud
    assert status.reported_addresses("10.0.0.5", "n1", [], external_cloud=True,
                                     node_ip_given=True) == ours
    assert status.reported_addresses("10.0.0.5", "n1", [], external_cloud=True,
                                     node_ip_given=False) == []


# -- lease -------------------------------------------------------------------------------------


async def test_lease_is_created_then_renewed_with_owner_and_micro_time(world: World) -> None:
    await world.manager.register()
    assert await world.manager.renew_lease()
    lease = world.api.objects[("leases", "kube-node-lease", "n1")]
    assert lease["spec"] == {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                             "renewTime": "2025-01-01T12:00:00.000000Z"}
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"}]
    world.clock.advance(10.25)
    assert await world.manager.renew_lease()
    lease = world.api.objects[("leases", "kube-node-lease", "n1")]
    assert lease["spec"]["renewTime"] == micro_time(T0 + timedelta(seconds=10.25))
    assert [a for a in world.api.actions(reads=True) if a[1] == "leases"] == [
        ("get", "leases", "n1"), ("create", "leases", "n1"), ("update", "leases", "n1")]


async def test_lease_conflict_rereads_and_failures_are_retried(world: World) -> None:
    world.api.seed(LEASES, {"metadata": {"name": "n1", "namespace": "kube-node-lease",
                                         "resourceVersion": "3"},
                            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}})
    await world.manager.register()
    assert await world.manager.renew_lease()
    world.api.fail_once[("update", "leases")] = errors.Conflict("the object has been modified")
    assert await world.manager.renew_lease()
    assert [a for a in world.api.actions(reads=True) if a[1] == "leases"][-3:] == [
        ("update", "leases", "n1"), ("get", "leases", "n1"), ("update", "leases", "n1")]
    world.api.fail_once[("update", "leases")] = errors.ServiceUnavailable("apiserver down")
    assert not await world.manager.renew_lease()
    assert await world.manager.renew_lease()
    assert world.api.objects[("leases", "kube-node-lease", "n1")]["metadata"][
        "ownerReferences"][0]["uid"] == "uid-n1"


# -- run --------------------------------------------------------------------------------------


async def test_run_renews_watches_and_survives_api_and_runtime_failures(tmp_path: Path) -> None:
    w = World(tmp_path)
    task = asyncio.create_task(w.manager.run())
    try:
        while len([a for a in w.api.actions() if a[1] == "leases"]) < 3:
            await asyncio.sleep(0.01)
        # The apiserver and containerd fail for a while: nothing dies.
        for _ in range(3):
            w.api.fail_once[("update", "leases")] = errors.ServiceUnavailable("down")
            w.api.fail_once[("patch", "nodes/status")] = errors.ServiceUnavailable("down")
            w.runtime.fail_next("status", cri_errors.Unavailable(
                "fake", "RuntimeService/Status", grpc.StatusCode.UNAVAILABLE, "gone"))
            w.clock.advance(301)
            await asyncio.sleep(0.05)
        await w.api.watch_events.put({"type": "ERROR", "object": {"code": 410}})
        # The pod CIDR arrives through the watch: Ready follows.
        assigned = json.loads(json.dumps(w.api.node()))
        assigned["spec"] = {"podCIDR": "10.244.3.0/24"}
        assigned["metadata"]["resourceVersion"] = "100"
        w.api.seed(NODES, assigned)
        await w.api.watch_events.put({"type": "MODIFIED", "object": assigned})
        for _ in range(200):
            if w.conditions()["Ready"]["status"] == "True":
                break
            await asyncio.sleep(0.01)
        assert w.conditions()["Ready"]["status"] == "True"
        assert w.conflist()["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
        assert not task.done()
        assert len(w.api.watches) >= 2  # re-watched after the ERROR event
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_host_machine_is_measured(tmp_path: Path) -> None:
    machine = HostMachine()
    sample = machine.sample(tmp_path, "")
    assert sample.cpus >= 1 and sample.memory_total > sample.memory_available > 0
    assert sample.nodefs is not None and sample.nodefs.capacity_bytes > 0
    assert sample.imagefs is None and sample.pid_max > sample.pids_running > 0
    info = machine.system_info()
    assert info.kernel_version and info.os_image and info.architecture


def test_config_defaults_are_the_kubelets(tmp_path: Path) -> None:
    config = NodeConfig(node_name="n", node_ip="", root_dir=tmp_path, cni_conf_dir=tmp_path)
    assert (config.max_pods, config.lease_duration_seconds, config.lease_renew_interval,
            config.status_update_frequency, config.status_report_frequency) == (
        110, 40, 10.0, 10.0, 300.0)
    assert dict(config.eviction_hard) == {
        "memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%",
        "imagefs.available": "15%", "imagefs.inodesFree": "5%"}
    assert replace(config, hostname="h").host == "h" and config.host == "n"
