"""`pinnace agent` running real pods: the real apiserver, etcd and containerd (with its CNI
bridge), pods created through kubectl and observed through the API, logs and exec through the
apiserver's proxy."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Kubectl, agent_daemon

from agent import labels
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd
from pinnace.local.daemon import PinnaceDaemon
from pinnace.local.process import Process

NODE = f"agent-{os.getpid() % 10000}"


@pytest.fixture(scope="module")
def agent(containerd: Containerd, apiserver: APIServerProcess,
          workdir: Path) -> Iterator[PinnaceDaemon]:
    # The agent shares containerd's network namespace (ours), as on a real node. Its CNI
    # conflist goes to a directory of its own: containerd keeps the fixture's (bridge pnh...).
    with agent_daemon(apiserver, containerd.socket, NODE, workdir / "agent") as process:
        yield process


def wait_for(kubectl: Kubectl, check: str, *args: str, timeout: float = 60) -> dict[str, object]:
    """Poll `kubectl get ... -o json` until `check` (a Python expression over `o`) holds."""
    return kubectl.get_until(check, *args, timeout=timeout)


@pytest.fixture
def ns(kubectl: Kubectl) -> str:
    name = f"a-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def pod(name: str, ns: str, command: str, **spec: object) -> str:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "main", "image": "localhost/busybox:1",
                                         "command": ["sh", "-c", command]}], **spec}}
    return json.dumps(manifest)


def test_node_registers_and_becomes_ready(agent: Process, kubectl: Kubectl) -> None:
    node = wait_for(kubectl, "any(c['type'] == 'Ready' and c['status'] == 'True' "
                    "for c in o['status'].get('conditions', []))", "node", NODE)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE  # type: ignore[index]


def test_pod_runs_and_reports_status(agent: Process, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=pod("web", ns, "echo hello; exec sleep 300"))
    running = wait_for(kubectl, "o['status'].get('phase') == 'Running' and all("
                       "s.get('ready') for s in o['status'].get('containerStatuses', []))",
                       "pod", "web", "-n", ns)
    status = running["status"]
    assert status["podIP"].startswith("10.253.1.")  # type: ignore[index]
    container = status["containerStatuses"][0]  # type: ignore[index]
    assert container["containerID"].startswith("containerd://")
    assert container["state"]["running"]["startedAt"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}  # type: ignore[index]
    assert conditions["Ready"] == "True" and conditions["Initialized"] == "True"
    table = kubectl("get", "pod", "web", "-n", ns).splitlines()[1].split()
    assert table[1:3] == ["1/1", "Running"]


def test_exit_codes_restarts_and_completion(agent: Process, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=pod("once", ns, "exit 0", restartPolicy="Never"))
    kubectl("apply", "-f", "-", input=pod("fails", ns, "exit 3", restartPolicy="Never"))
    kubectl("apply", "-f", "-", input=pod("crash", ns, "exit 1"))
    done = wait_for(kubectl, "o['status'].get('phase') == 'Succeeded'", "pod", "once", "-n", ns)
    assert done["status"]["containerStatuses"][0]["state"]["terminated"][  # type: ignore[index]
        "reason"] == "Completed"
    failed = wait_for(kubectl, "o['status'].get('phase') == 'Failed'", "pod", "fails", "-n", ns)
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]  # type: ignore
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    crash = wait_for(kubectl, "o['status']['containerStatuses'][0].get('restartCount', 0) >= 1 "
                     "and 'CrashLoopBackOff' in json.dumps(o['status'])", "pod", "crash", "-n", ns)
    assert crash["status"]["phase"] == "Running"  # type: ignore[index]


def test_deleting_a_pod_stops_it_and_removes_it(agent: Process, kubectl: Kubectl,
                                                 ns: str) -> None:
    kubectl("apply", "-f", "-", input=pod("doomed", ns, "trap 'exit 0' TERM; sleep 300 & wait"))
    wait_for(kubectl, "o['status'].get('phase') == 'Running'", "pod", "doomed", "-n", ns)
    started = time.monotonic()
    assert kubectl("delete", "pod", "doomed", "-n", ns).strip() == 'pod "doomed" deleted'
    assert time.monotonic() - started < 15
    assert "not found" in kubectl.fails("get", "pod", "doomed", "-n", ns)


def test_bad_image_and_missing_configmap_have_reasons(agent: Process, kubectl: Kubectl,
                                                      ns: str) -> None:
    manifest = json.loads(pod("noimage", ns, "true"))
    manifest["spec"]["containers"][0]["image"] = "127.0.0.1:1/nothing:here"
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for(kubectl, "o['status']['containerStatuses'][0]['state'].get('waiting', {}).get("
             "'reason') in ('ErrImagePull', 'ImagePullBackOff')", "pod", "noimage", "-n", ns)
    manifest = json.loads(pod("nocm", ns, "true"))
    manifest["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "absent", "key": "k"}}}]
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    waiting = wait_for(kubectl, "o['status']['containerStatuses'][0]['state'].get('waiting', "
                       "{}).get('reason') == 'CreateContainerConfigError'", "pod", "nocm", "-n",
                       ns)
    message = waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]  # type: ignore
    assert 'configmap "absent" not found' in message


async def test_env_and_volumes_from_configmaps_and_secrets(agent: Process, kubectl: Kubectl,
                                                           containerd: Containerd,
                                                           ns: str) -> None:
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast", "-n", ns)
    kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cret", "-n", ns)
    manifest = json.loads(pod("uses-config", ns, "exec sleep 300"))
    container = manifest["spec"]["containers"][0]
    container["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    container["volumeMounts"] = [{"name": "cfg", "mountPath": "/etc/cfg"},
                                 {"name": "sec", "mountPath": "/etc/sec"},
                                 {"name": "scratch", "mountPath": "/scratch"}]
    manifest["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "settings"}},
                                   {"name": "sec", "secret": {"secretName": "creds"}},
                                   {"name": "scratch", "emptyDir": {}}]
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_for(kubectl, "o['status'].get('phase') == 'Running'", "pod", "uses-config", "-n", ns)
    async with RuntimeClient(containerd.socket) as rt:
        found = await rt.list_containers(api.ContainerFilter(label_selector={
            labels.POD_NAME: "uses-config", labels.POD_NAMESPACE: ns}))
        cid = found[0].id

        async def run(*cmd: str) -> str:
            return (await rt.exec_sync(cid, list(cmd), 10)).stdout.decode()

        assert (await run("sh", "-c", "echo $MODE $POD")).split() == ["fast", "uses-config"]
        assert await run("cat", "/etc/cfg/mode") == "fast"
        assert await run("cat", "/etc/sec/password") == "s3cret"
        assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in await run("env")
        kubectl("patch", "configmap", "settings", "-n", ns, "--type=merge",
                "-p", '{"data":{"mode":"slow"}}')
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and await run("cat", "/etc/cfg/mode") != "slow":
            await asyncio.sleep(0.3)
        assert await run("cat", "/etc/cfg/mode") == "slow"  # the volume follows the configMap


def test_init_containers_and_readiness_probe(agent: Process, kubectl: Kubectl, ns: str) -> None:
    manifest = json.loads(pod("probed", ns, "sleep 2; touch /tmp/ready; exec sleep 300"))
    manifest["spec"]["initContainers"] = [
        {"name": "first", "image": "localhost/busybox:1", "command": ["sh", "-c", "sleep 1"]},
        {"name": "second", "image": "localhost/busybox:1", "command": ["true"]}]
    manifest["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    running = wait_for(kubectl, "o['status'].get('phase') == 'Running'", "pod", "probed",
                       "-n", ns)
    inits = running["status"]["initContainerStatuses"]  # type: ignore[index]
    assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed", "Completed"]
    ready = wait_for(kubectl, "any(c['type'] == 'Ready' and c['status'] == 'True' for c in "
                     "o['status']['conditions'])", "pod", "probed", "-n", ns)
    assert ready["status"]["containerStatuses"][0]["ready"] is True  # type: ignore[index]


async def test_agent_restart_adopts_and_cleans_up(agent: Process, kubectl: Kubectl,
                                                  containerd: Containerd, ns: str) -> None:
    manifests = [json.loads(pod(f"p{i}", ns, "exec sleep 300")) for i in range(20)]
    kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": manifests}))  # 20 pods at once
    in_namespace = api.PodSandboxFilter(label_selector={labels.POD_NAMESPACE: ns})
    async with RuntimeClient(containerd.socket) as rt:
        deadline = time.monotonic() + 30
        while len(await rt.list_pod_sandbox(in_namespace)) < 3:  # some started, not all
            assert time.monotonic() < deadline, "the agent started no pods"
            await asyncio.sleep(0.02)
        assert agent.popen is not None
        agent.popen.kill()  # kill -9 mid-way
        agent.popen.wait()
        started = len(await rt.list_pod_sandbox(in_namespace))
    print(f"agent killed with {started} of 20 sandboxes started")
    kubectl("delete", "pod", "p0", "-n", ns, "--wait=false")
    agent.start()
    for i in range(1, 20):
        wait_for(kubectl, "o['status'].get('phase') == 'Running'", "pod", f"p{i}", "-n", ns,
                 timeout=90)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and kubectl.run("get", "pod", "p0", "-n",
                                                      ns).returncode == 0:
        time.sleep(0.3)
    assert "not found" in kubectl.fails("get", "pod", "p0", "-n", ns)
    async with RuntimeClient(containerd.socket) as rt:
        containers = await rt.list_containers(api.ContainerFilter(
            label_selector={labels.POD_NAMESPACE: ns}))
        running: dict[str, int] = {}
        for container in containers:
            name = container.labels[labels.POD_NAME]
            if container.state == api.CONTAINER_RUNNING:
                running[name] = running.get(name, 0) + 1
            else:
                # A start the killed agent had in flight fails (containerd: StartError, 128)
                # and is retried as restart 1: failed, never running twice.
                status = await rt.container_status(container.id)
                assert (status.exit_code, status.reason) == (128, "StartError"), status
        assert "p0" not in running
        assert not [c for c in containers if c.labels[labels.POD_NAME] == "p0"]  # removed
        assert sorted(running) == sorted(f"p{i}" for i in range(1, 20))
        assert set(running.values()) == {1}, running  # nothing runs twice
        sandboxes = await rt.list_pod_sandbox(api.PodSandboxFilter(
            label_selector={labels.POD_NAMESPACE: ns}))
        assert len(sandboxes) == 19


def test_logs_and_exec_through_the_apiserver(agent: Process, kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=pod("chatty", ns, "echo line-one; echo line-two; "
                                          "exec sleep 300"))
    wait_for(kubectl, "o['status'].get('phase') == 'Running'", "pod", "chatty", "-n", ns)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "line-two" not in kubectl.run(
            "logs", "chatty", "-n", ns).stdout:
        time.sleep(0.3)
    assert kubectl("logs", "chatty", "-n", ns).splitlines() == ["line-one", "line-two"]
    assert kubectl("exec", "chatty", "-n", ns, "--", "echo", "hi").strip() == "hi"
    failed = kubectl.run("exec", "chatty", "-n", ns, "--", "sh", "-c", "exit 3")
    assert failed.returncode == 3


def test_active_deadline_fails_the_pod(agent: Process, kubectl: Kubectl, ns: str) -> None:
    manifest = json.loads(pod("deadline", ns, "trap 'exit 0' TERM; sleep 300 & wait",
                              activeDeadlineSeconds=3))
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    failed = wait_for(kubectl, "o['status'].get('phase') == 'Failed'", "pod", "deadline",
                      "-n", ns, timeout=30)
    assert failed["status"]["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert "longer than the specified deadline" in failed["status"]["message"]  # type: ignore
