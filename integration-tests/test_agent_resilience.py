"""The agent survives its apiserver and its containerd going away and coming back, a restart on
another port, and reports exits within about a second: real etcd, apiserver, containerd, runc.

Each test gets its own apiserver (over the session's etcd, with its own CA and admin kubeconfig)
and its own containerd (in this network namespace, with its own bridge and pod CIDR), both
stopped and started again by PID, so that the session's shared processes are never disturbed.
While the test's apiserver is down, the cluster is changed through the session's apiserver, as a
highly available control plane would let other clients do. Pods wait for a file in a hostPath
directory before they exit, so that an exit can be caused while containerd is down.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from harness import Kubectl, agent_args, issue_agent_cert, started

from agent import labels
from cri import errors as cri_errors
from cri.runtime import RuntimeClient
from cri.v1 import api_pb2 as api_pb
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.containerd import Containerd
from pinnace.local.daemon import PinnaceDaemon
from pinnace.local.etcd import Etcd
from pinnace.local.process import Process, free_port

Object = dict[str, Any]
T = TypeVar("T")
SUFFIX = f"{os.getpid() % 0x10000:04x}"
POD_CIDR = f"10.253.{100 + os.getpid() % 150}.0/24"
_count = itertools.count()


def wait(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; return that, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (OSError, KeyError, IndexError, TypeError, cri_errors.CRIError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class API:
    """Direct reads through one apiserver (faster than kubectl for tight polling)."""

    def __init__(self, server: APIServerProcess) -> None:
        self.server = server
        self.context = server.ssl_context()

    def get(self, path: str) -> Object | None:
        """The object at `path`, or None when it does not exist."""
        try:
            with urllib.request.urlopen(self.server.url + path, timeout=5,
                                        context=self.context) as response:
                body: Object = json.loads(response.read())
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def pod(self, ns: str, name: str) -> Object | None:
        return self.get(f"/api/v1/namespaces/{ns}/pods/{name}")

    def node(self, name: str) -> Object:
        """The Node ({} while it does not exist)."""
        return self.get(f"/api/v1/nodes/{name}") or {}


def condition(node: Object, kind: str) -> Object:
    """The node's condition `kind` ({} while it has none)."""
    conditions = (node.get("status") or {}).get("conditions") or []
    found: Object = next((c for c in conditions if c["type"] == kind), {})
    return found


def container_state(pod: Object | None) -> Object:
    state: Object = (pod or {}).get("status", {}).get("containerStatuses", [{}])[0].get(
        "state", {})
    return state


class NodeAgent:
    """`pinnace agent` for one node: (re)started by the test, on a port of its choosing."""

    def __init__(self, base: Path, server: APIServerProcess, containerd: Containerd) -> None:
        self.base = base
        self.name = f"rs{SUFFIX}-{next(_count)}"
        self.server = server
        self.containerd = containerd
        self.process: Process | None = None
        self.port = 0
        issue_agent_cert(server, self.name, base)

    def start(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.process = PinnaceDaemon("agent", agent_args(
            self.server, self.name, self.containerd.socket, self.base, port=self.port,
            pod_cidr=POD_CIDR), self.base / "agent.log", name=f"agent-{self.name}")
        self.process.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def own_apiserver(workdir: Path, etcd: Etcd) -> Iterator[APIServerProcess]:
    with started(APIServerProcess(workdir / f"rs-apiserver-{uuid.uuid4().hex[:6]}",
                                  etcd.endpoint, name="apiserver-rs")) as server:
        yield server


@pytest.fixture
def own_containerd(workdir: Path, images: dict[str, Path]) -> Iterator[Containerd]:
    with started(Containerd(workdir / f"rs-node-{uuid.uuid4().hex[:6]}", name="containerd-rs",
                            bridge=f"pnr{SUFFIX}", pod_cidr=POD_CIDR)) as daemon:
        daemon.import_images(images["pause"], images["busybox"])
        yield daemon


@pytest.fixture
def own_kubectl(own_apiserver: APIServerProcess, tmp_path: Path) -> Kubectl:
    return Kubectl(own_apiserver.kubeconfig, tmp_path / "kube-cache")


@pytest.fixture
def node_agent(own_apiserver: APIServerProcess, own_containerd: Containerd, workdir: Path,
               own_kubectl: Kubectl, kubectl: Kubectl) -> Iterator[NodeAgent]:
    agent = NodeAgent(workdir / f"rs-agent-{uuid.uuid4().hex[:6]}", own_apiserver,
                      own_containerd)
    agent.start()
    try:
        api = API(own_apiserver)
        wait(lambda: condition(api.node(agent.name), "Ready")["status"] == "True", 60,
             "the node to be Ready")
        yield agent
    finally:
        agent.stop()
        # Through the session's apiserver: the test's own one may be down after a failure.
        kubectl.run("delete", "node", agent.name, "--wait=false")


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"rs-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def pod(name: str, ns: str, node: str, command: str, *, trigger: Path | None = None,
        **spec: Any) -> str:
    """A busybox pod running `command`; with `trigger`, the host directory is /trigger."""
    container: Object = {"name": "main", "image": "localhost/busybox:1",
                         "command": ["sh", "-c", command]}
    manifest: Object = {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                                 "containers": [container], **spec}}
    if trigger is not None:
        trigger.mkdir(parents=True, exist_ok=True)
        container["volumeMounts"] = [{"name": "trigger", "mountPath": "/trigger"}]
        manifest["spec"]["volumes"] = [{"name": "trigger", "hostPath": {"path": str(trigger)}}]
    return json.dumps(manifest)


def exits_on(file: str, code: int) -> str:
    """A command that waits for /trigger/`file` and then exits with `code`."""
    return f"until [ -e /trigger/{file} ]; do sleep 0.05; done; exit {code}"


def running(api: API, ns: str, name: str, timeout: float = 60) -> Object:
    def check() -> Object | None:
        found = api.pod(ns, name)
        ok = found is not None and found["status"].get("phase") == "Running" and \
            "running" in container_state(found)
        return found if ok else None

    return wait(check, timeout, f"pod {name} to run")


def lease_renewed_after(api: API, node: str, after: float) -> bool:
    lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}")
    renewed = (lease or {}).get("spec", {}).get("renewTime", "")
    if not renewed:
        return False
    when = datetime.strptime(renewed, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return when.timestamp() > after


def test_apiserver_restart_loses_nothing(node_agent: NodeAgent, own_apiserver: APIServerProcess,
                                         own_kubectl: Kubectl, kubectl: Kubectl, ns: str,
                                         tmp_path: Path) -> None:
    api, node = API(own_apiserver), node_agent.name
    trigger = tmp_path / "trigger"
    own_kubectl("apply", "-f", "-", input=pod("keeper", ns, node, "exec sleep 300"))
    own_kubectl("apply", "-f", "-", input=pod("quitter", ns, node, exits_on("go", 7),
                                              trigger=trigger, restartPolicy="Never"))
    own_kubectl("apply", "-f", "-", input=pod("doomed", ns, node,
                                              "trap 'exit 0' TERM; sleep 300 & wait"))
    keeper = running(api, ns, "keeper")
    running(api, ns, "quitter")
    running(api, ns, "doomed")

    pid = own_apiserver.process.pid
    own_apiserver.stop()
    assert not own_apiserver.process.alive()
    stopped = time.time()
    print(f"apiserver pid {pid} stopped")
    # While it is down: a container exits, a pod is deleted and another created elsewhere.
    (trigger / "go").touch()
    kubectl("delete", "pod", "doomed", "-n", ns, "--wait=false")
    kubectl("apply", "-f", "-", input=pod("during", ns, node, "exec sleep 300"))
    time.sleep(3)  # the agent's writes fail meanwhile
    own_apiserver.start()
    print(f"apiserver back (pid {own_apiserver.process.pid}) after {time.time() - stopped:.1f}s")
    back = time.time()

    quitter = wait(lambda: (p := api.pod(ns, "quitter")) and p["status"]["phase"] == "Failed"
                   and p, 60, "the exit to be reported after the return")
    print(f"exit reported {time.time() - back:.1f}s after the apiserver's return")
    assert container_state(quitter)["terminated"]["exitCode"] == 7
    running(api, ns, "during")
    wait(lambda: api.pod(ns, "doomed") is None, 60, "the agent to confirm the deletion")
    wait(lambda: lease_renewed_after(api, node, back), 30, "the lease to be renewed")
    own_kubectl("apply", "-f", "-", input=pod("after", ns, node, "exec sleep 300"))
    running(api, ns, "after")
    now = api.pod(ns, "keeper")
    assert now is not None
    assert now["status"]["containerStatuses"][0]["containerID"] == \
        keeper["status"]["containerStatuses"][0]["containerID"]
    assert now["status"]["containerStatuses"][0]["restartCount"] == 0


def test_containerd_restart_marks_the_node_not_ready_and_loses_nothing(
        node_agent: NodeAgent, own_apiserver: APIServerProcess, own_containerd: Containerd,
        own_kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    api, node = API(own_apiserver), node_agent.name
    trigger = tmp_path / "trigger"
    own_kubectl("apply", "-f", "-", input=pod("keeper", ns, node, "exec sleep 300"))
    own_kubectl("apply", "-f", "-", input=pod("quitter", ns, node, exits_on("down", 5),
                                              trigger=trigger, restartPolicy="Never"))
    own_kubectl("apply", "-f", "-", input=pod("later", ns, node, exits_on("up", 4),
                                              trigger=trigger, restartPolicy="Never"))
    keeper = running(api, ns, "keeper")
    running(api, ns, "quitter")
    running(api, ns, "later")

    own_containerd.process.stop()  # SIGTERM by PID: the shims and their containers stay
    down = time.monotonic()
    ready = wait(lambda: (c := condition(api.node(node), "Ready"))["status"] == "False" and c,
                 30, "the node to turn NotReady")
    print(f"Ready=False {time.monotonic() - down:.1f}s after containerd stopped: "
          f"{ready['message']}")
    assert ready["reason"] == "KubeletNotReady"
    assert ready["message"].startswith("container runtime is down")
    (trigger / "down").touch()  # exits while containerd is down
    own_kubectl("apply", "-f", "-", input=pod("newcomer", ns, node, "exec sleep 300"))
    time.sleep(2)
    assert api.pod(ns, "keeper")["status"]["phase"] == "Running"  # type: ignore[index]

    own_containerd.process.start()
    own_containerd.process.wait_ready(own_containerd._answers, 30)
    up = time.monotonic()
    wait(lambda: condition(api.node(node), "Ready")["status"] == "True", 30,
         "the node to be Ready again")
    print(f"Ready=True {time.monotonic() - up:.1f}s after containerd started again")
    quitter = wait(lambda: (p := api.pod(ns, "quitter")) and p["status"]["phase"] == "Failed"
                   and p, 60, "the exit during the outage to be reported")
    assert container_state(quitter)["terminated"]["exitCode"] == 5
    running(api, ns, "newcomer")
    now = api.pod(ns, "keeper")
    assert now is not None and "running" in container_state(now)
    assert now["status"]["containerStatuses"][0]["containerID"] == \
        keeper["status"]["containerStatuses"][0]["containerID"]  # the same container, kept
    assert now["status"]["containerStatuses"][0]["restartCount"] == 0
    # The event stream is back: an exit shows within seconds, not at the next relist.
    (trigger / "up").touch()
    touched = time.monotonic()
    wait(lambda: container_state(api.pod(ns, "later")).get("terminated"), 10,
         "the exit after the return", every=0.02)
    lag = time.monotonic() - touched
    print(f"exit after containerd's return reported in {lag:.2f}s")
    assert lag < 3


def test_agent_on_another_port_keeps_logs_and_exec_working(
        node_agent: NodeAgent, own_apiserver: APIServerProcess, own_kubectl: Kubectl,
        ns: str) -> None:
    api, node = API(own_apiserver), node_agent.name
    own_kubectl("apply", "-f", "-", input=pod("chatty", ns, node,
                                              "echo hello-there; exec sleep 300"))
    running(api, ns, "chatty")
    first = node_agent.port
    wait(lambda: "hello-there" in own_kubectl.run("logs", "chatty", "-n", ns).stdout, 20,
         "the logs through the first port")
    node_agent.stop()
    node_agent.start()
    assert node_agent.port != first
    wait(lambda: api.node(node)["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] ==
         node_agent.port, 30, "the new port to be posted")
    wait(lambda: "hello-there" in own_kubectl.run("logs", "chatty", "-n", ns).stdout, 30,
         "the logs through the new port")
    assert own_kubectl("exec", "chatty", "-n", ns, "--", "echo", "hi").strip() == "hi"
    assert own_kubectl.run("exec", "chatty", "-n", ns, "--", "sh", "-c", "exit 3").returncode == 3


async def test_an_exit_reaches_the_pod_status_within_a_second_or_so(
        node_agent: NodeAgent, own_apiserver: APIServerProcess, own_containerd: Containerd,
        own_kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    api, node = API(own_apiserver), node_agent.name
    trigger = tmp_path / "trigger"
    names = [f"exit{i}" for i in range(6)]
    for i, name in enumerate(names):
        policy = "Never" if i % 2 == 0 else "Always"
        own_kubectl("apply", "-f", "-", input=pod(name, ns, node, exits_on(name, 3),
                                                  trigger=trigger, restartPolicy=policy))
    for name in names:
        running(api, ns, name)
    lags = []
    async with RuntimeClient(own_containerd.socket) as rt:
        for name in names:
            first = api.pod(ns, name)
            assert first is not None
            cid = first["status"]["containerStatuses"][0]["containerID"].split("//")[1]
            (trigger / name).touch()

            def reported(name: str = name) -> bool:
                status = (api.pod(ns, name) or {}).get("status", {})
                c = status["containerStatuses"][0]
                return "terminated" in c["state"] or "terminated" in c.get("lastState", {})

            wait(reported, 10, f"{name}'s exit in the API", every=0.01)
            seen = time.time()
            found = await rt.container_status(cid)
            assert found.state == api_pb.CONTAINER_EXITED and found.exit_code == 3
            assert found.labels[labels.POD_NAME] == name
            lags.append(seen - found.finished_at / 1e9)
    print(f"exit -> pod status: median {statistics.median(lags):.3f}s, "
          f"max {max(lags):.3f}s over {len(lags)} exits: {[round(x, 3) for x in lags]}")
    assert max(lags) < 3
