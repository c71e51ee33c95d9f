"""Garbage collection by `pinnace agent` on a containerd of its own (images are removed here,
which must not disturb the session's containerd): dead containers beyond the per-container
limit go (and `kubectl logs --previous` still works), a pod deleted while the agent was down
leaves nothing behind, `kubectl logs --previous` in CrashLoopBackOff shows the last run, and
with the thresholds forced (high 1, low 0) an unused image is removed while the in-use busybox,
the sandbox (pause) image and an image preloaded from --images-dir stay; FreeDiskSpaceFailed on
the Node."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tarfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl

from agent import labels
from agent.images import build, importer, layout
from controlplane.apiserver import pki
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd
from pinnace.local.process import Process, free_port

SUFFIX = f"{os.getpid() % 0x10000:04x}"
POD_CIDR = f"10.253.{20 + os.getpid() % 80}.0/24"
NODE = f"gc-{os.getpid() % 10000}"
BUSYBOX, PAUSE, UNUSED = "localhost/busybox:1", "localhost/pause:1", "localhost/gc-unused:1"
PRELOADED = "localhost/gc-preloaded:1"
FAST = ["--container-gc-period", "1s", "--image-gc-period", "1s"]
IMAGE_GC_OFF = ["--image-gc-high-threshold", "100"]
IMAGE_GC_FORCED = ["--image-gc-high-threshold", "1", "--image-gc-low-threshold", "0",
                   "--minimum-image-ttl-duration", "0s"]


@pytest.fixture(scope="module")
def gc_containerd(workdir: Path, images: dict[str, Path]) -> Iterator[Containerd]:
    daemon = Containerd(workdir / f"gc-node-{uuid.uuid4().hex[:6]}", name="containerd-gc",
                        bridge=f"pgc{SUFFIX}", pod_cidr=POD_CIDR)
    try:
        daemon.start()
        daemon.import_images(images["pause"], images["busybox"])
        yield daemon
    finally:
        daemon.stop()


class Agent:
    """The agent process, restartable with other flags."""

    def __init__(self, base: Path, apiserver: APIServerProcess, containerd: Containerd) -> None:
        self.base, self.apiserver, self.containerd = base, apiserver, containerd
        self.logs = base / "logs"
        self.process: Process | None = None
        ca = apiserver.cert_dir
        base.mkdir(parents=True, exist_ok=True)
        pki.issue_serving_cert(ca / "ca.crt", ca / "ca.key", common_name=f"system:node:{NODE}",
                               hosts=["127.0.0.1", NODE], out_cert=base / "tls.crt",
                               out_key=base / "tls.key")

    def start(self, *flags: str) -> None:
        self.stop()
        ca = self.apiserver.cert_dir
        self.process = Process("agent-gc", [
            sys.executable, "-m", "pinnace", "agent", "--kubeconfig",
            str(self.apiserver.kubeconfig), "--node-name", NODE, "--containerd",
            self.containerd.socket, "--root-dir", str(self.base / "root"), "--pod-log-dir",
            str(self.logs), "--pod-cidr", POD_CIDR, "--cni-conf-dir", str(self.base / "cni"),
            "--port", str(free_port()), "--address", "127.0.0.1",
            "--tls-cert-file", str(self.base / "tls.crt"),
            "--tls-private-key-file", str(self.base / "tls.key"),
            "--client-ca-file", str(ca / "ca.crt"), *flags,
        ], self.base / "agent.log")
        self.process.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture(scope="module")
def agent(gc_containerd: Containerd, apiserver: APIServerProcess,
          workdir: Path) -> Iterator[Agent]:
    running = Agent(workdir / "agent-gc", apiserver, gc_containerd)
    running.start(*FAST, *IMAGE_GC_OFF)
    try:
        yield running
    finally:
        running.stop()
        Kubectl(apiserver.kubeconfig, workdir / "agent-gc" / "kube-cache").run(
            "delete", "node", NODE, "--wait=false")


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"gc-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def pod(name: str, ns: str, command: str, **spec: object) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": BUSYBOX,
                                 "command": ["sh", "-c", command]}], **spec}})


def wait_pod(kubectl: Kubectl, name: str, ns: str, check: str,
             timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = kubectl.run("get", "pod", name, "-n", ns, "-o", "json")
        if result.returncode == 0:
            obj = json.loads(result.stdout)
            try:
                if eval(check, {}, {"o": obj}):  # noqa: S307 - test-local
                    return obj
            except (KeyError, IndexError, TypeError):
                pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {check}: {json.dumps(obj)[:2000]}")


async def containers_of(socket: str, uid: str) -> list[api.Container]:
    async with RuntimeClient(socket) as rt:
        return list(await rt.list_containers(api.ContainerFilter(
            label_selector={labels.POD_UID: uid})))


async def sandboxes_of(socket: str, uid: str) -> list[api.PodSandbox]:
    async with RuntimeClient(socket) as rt:
        return list(await rt.list_pod_sandbox(api.PodSandboxFilter(
            label_selector={labels.POD_UID: uid})))


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.3)


async def test_dead_containers_beyond_one_per_container_are_removed(
        agent: Agent, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=pod("crash", ns, "echo started; sleep 3; exit 1"))
    running = await asyncio.to_thread(
        wait_pod, kubectl, "crash", ns, "o['status']['containerStatuses'][0]['restartCount'] >= 2"
        " and 'running' in o['status']['containerStatuses'][0]['state']")
    uid = running["metadata"]["uid"]

    async def only_newest() -> list[tuple[int, int]]:
        found = sorted((int(c.metadata.attempt), int(c.state)) for c in
                       await containers_of(agent.containerd.socket, uid))
        dead = [a for a, state in found if state != api.CONTAINER_RUNNING]
        newest = max(a for a, _ in found)
        return found if len(dead) <= 1 and all(a >= newest - 1 for a, _ in found) else []

    found = await eventually(only_newest)
    assert found, await containers_of(agent.containerd.socket, uid)
    assert 0 not in [a for a, _ in found]  # the first attempt is gone ...
    logs = agent.logs / f"{ns}_crash_{uid}" / "main"
    assert not (logs / "0.log").exists()  # ... with its log file
    # the previous instance while the newest runs, or (it exited meanwhile, CrashLoopBackOff)
    # the newest: either way the last run, kept by GC
    assert kubectl("logs", "crash", "-n", ns, "--previous").strip() == "started"


CRASH_LOOP = ("n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; "
              "echo run $n; exit 1")


async def test_logs_previous_in_crash_loop_back_off_is_the_last_run(
        agent: Agent, kubectl: Kubectl, ns: str) -> None:
    """As the kubelet: while the container waits in CrashLoopBackOff its last run is the
    status' lastState, which `kubectl logs --previous` (and plain `logs`) show, and which the
    container GC (1 dead container per container, every second here) keeps."""
    spec = json.loads(pod("loop", ns, CRASH_LOOP))
    spec["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    kubectl("apply", "-f", "-", input=json.dumps(spec))
    backing_off = await asyncio.to_thread(
        wait_pod, kubectl, "loop", ns,
        "o['status']['containerStatuses'][0]['restartCount'] >= 1 and "
        "o['status']['containerStatuses'][0]['state']['waiting']['reason'] == "
        "'CrashLoopBackOff'")
    status = backing_off["status"]["containerStatuses"][0]
    runs = status["restartCount"] + 1
    uid = backing_off["metadata"]["uid"]
    last_id = status["lastState"]["terminated"]["containerID"].removeprefix("containerd://")

    async def only_the_last_run() -> bool:  # the container GC has had its pass
        return [c.id for c in await containers_of(agent.containerd.socket, uid)] == [last_id]

    assert await eventually(only_the_last_run, 10), await containers_of(
        agent.containerd.socket, uid)
    previous = kubectl("logs", "loop", "-n", ns, "--previous")
    plain = kubectl("logs", "loop", "-n", ns)
    current = await asyncio.to_thread(wait_pod, kubectl, "loop", ns, "True")
    assert current["status"]["containerStatuses"][0]["restartCount"] == runs - 1  # still waiting
    assert (previous, plain) == (f"run {runs}\n", f"run {runs}\n")


async def test_a_pod_deleted_while_the_agent_was_down_leaves_nothing(
        agent: Agent, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=pod("done", ns, "echo bye", restartPolicy="Never"))
    finished = await asyncio.to_thread(wait_pod, kubectl, "done", ns,
                                       "o['status'].get('phase') == 'Succeeded'")
    uid = finished["metadata"]["uid"]
    log_dir = agent.logs / f"{ns}_done_{uid}"
    assert log_dir.is_dir() and await containers_of(agent.containerd.socket, uid)
    agent.stop()
    kubectl("delete", "pod", "done", "-n", ns, "--grace-period=0", "--force")
    agent.start(*FAST, *IMAGE_GC_OFF)

    async def nothing_left() -> bool:
        return not (await containers_of(agent.containerd.socket, uid)
                    or await sandboxes_of(agent.containerd.socket, uid) or log_dir.exists())

    assert await eventually(nothing_left, 60), (
        await containers_of(agent.containerd.socket, uid),
        await sandboxes_of(agent.containerd.socket, uid), log_dir.exists())


def unused_image(out: Path, name: str = UNUSED) -> Path:
    """A tiny image nothing uses (its own layer: not busybox's nor pause's id)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        payload = f"unused {uuid.uuid4()}\n".encode()
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    archive = build.image_layout(data.getvalue(), {"Cmd": ["true"]}, [name])
    path = out / f"{name.rsplit('/', 1)[-1].replace(':', '-')}.tar"
    layout.write_oci_tar(archive, path)
    return path


async def test_images_preloaded_from_the_images_dir_are_never_collected(
        agent: Agent, tmp_path: Path) -> None:
    """An air-gapped node could not pull them back: with the thresholds forced, an unused
    image imported from --images-dir stays while another unused image goes."""
    preloaded_dir = tmp_path / "images"
    preloaded_dir.mkdir()
    unused_image(preloaded_dir, PRELOADED)
    socket = agent.containerd.socket
    await importer.import_archive(unused_image(tmp_path), socket)
    try:
        agent.start(*FAST, *IMAGE_GC_FORCED, "--images-dir", str(preloaded_dir))
        async with RuntimeClient(socket) as rt:

            async def removed() -> bool:
                return await rt.image_status(UNUSED) is None

            assert await eventually(removed, 60), "the unused image was not collected"
            assert await rt.image_status(PRELOADED) is not None
            await asyncio.sleep(3)  # a few more passes, 1 s apart
            assert await rt.image_status(PRELOADED) is not None
    finally:
        agent.start(*FAST, *IMAGE_GC_OFF)


async def test_unused_images_go_above_the_high_threshold_used_and_pause_stay(
        agent: Agent, kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    kubectl("apply", "-f", "-", input=pod("user", ns, "exec sleep 300"))
    await asyncio.to_thread(wait_pod, kubectl, "user", ns,
                            "o['status'].get('phase') == 'Running'")
    socket = agent.containerd.socket
    await importer.import_archive(unused_image(tmp_path), socket)
    async with RuntimeClient(socket) as rt:

        async def present() -> bool:  # the CRI learns of imported images from events
            return await rt.image_status(UNUSED) is not None

        assert await eventually(present, 10), [i.repo_tags for i in await rt.list_images()]
        agent.start(*FAST, *IMAGE_GC_FORCED)  # usage is surely >= 1 %: collect down to 0 %

        async def removed() -> bool:
            return await rt.image_status(UNUSED) is None

        assert await eventually(removed, 60), "the unused image was not collected"
        assert await rt.image_status(BUSYBOX) is not None  # in use by "user"
        assert await rt.image_status(PAUSE) is not None  # the sandbox image
    # 0 % cannot be reached: the kubelet's event on the Node says so.

    def node_events() -> list[str]:
        out = kubectl("get", "events", "-n", "default", "-o", "json")
        return [e["reason"] for e in json.loads(out)["items"]
                if e["involvedObject"].get("kind") == "Node"
                and e["involvedObject"].get("name") == NODE]

    deadline = time.monotonic() + 30
    while "FreeDiskSpaceFailed" not in node_events() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert "FreeDiskSpaceFailed" in node_events()
    status = await asyncio.to_thread(wait_pod, kubectl, "user", ns,
                                     "o['status'].get('phase') == 'Running'")
    assert status["status"]["containerStatuses"][0]["restartCount"] == 0
