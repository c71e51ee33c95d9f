"""The seed's workflow end to end, on a 3-node `pinnace up` cluster driven by the real kubectl.

1. A Deployment (3 replicas) and a Service from examples/, submitted with kubectl;
2. the scheduler spreads them over the nodes; 3. the controller-manager keeps 3 replicas;
4. the agents pull `busybox` through the registry's docker.io mirror and start the pods;
5. netproxy programs the service: a pod on another node reaches it by ClusterIP and by DNS
   name, the host by NodePort; 6. everything is in etcd, read back raw with etcdctl.
Then: scale to 5; a rolling update; node3 lost (its agent and containerd killed with -9 and its
link cut, so `up`'s supervisor cannot bring it back) -> NotReady -> its pods evicted and
recreated on the others; the whole `up` restarted -> the same objects, the same pods running;
no leftovers after the last stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness import Kubectl
from pyroute2 import IPRoute
from upcluster import Up, eventually, leftovers

from pinnace.local import cleanup

TOP = Path(__file__).resolve().parents[1]
EXAMPLES = TOP / "examples"
READY_TIMEOUT = 120.0
NODE_ADDRESS = {"node1": "10.254.0.11", "node2": "10.254.0.12", "node3": "10.254.0.13"}
# So the test need not wait the default 300 s before pods leave a lost node.
TOLERATIONS = {"spec": {"template": {"spec": {"tolerations": [
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 2},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 2}]}}}}

CLIENT = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: client
    image: busybox
    command: ["sh", "-c", "for i in $(seq 30); do
              timeout 3 wget -qO- http://{target}:80/ && exit 0; sleep 1; done; exit 1"]
"""


def web_pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    """The web pods that are not being deleted."""
    items = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_web(kubectl: Kubectl, n: int) -> list[dict[str, Any]] | None:
    pods = web_pods(kubectl)
    return pods if len(pods) == n and all(map(ready, pods)) else None


def reach_from_pod(kubectl: Kubectl, name: str, node: str, target: str) -> str:
    kubectl("apply", "-f", "-", input=CLIENT.format(name=name, node=node, target=target))

    def done() -> str:
        phase = str(json.loads(kubectl("get", "pod", name, "-o", "json"))["status"].get(
            "phase", ""))
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = eventually(done, 90, f"{name} finished")
    logs = kubectl("logs", name)
    assert phase == "Succeeded", f"{name} could not reach {target}: {logs}"
    return logs


def node_port(address: str) -> bytes:
    """GET the web service through its NodePort on `address` (b"" and a note when it fails)."""
    try:
        with urllib.request.urlopen(f"http://{address}:30080/", timeout=5) as response:
            return bytes(response.read())
    except OSError as exc:
        print(f"NodePort {address}:30080: {exc}")
        return b""


def node_ready(kubectl: Kubectl, node: str) -> str:
    obj = json.loads(kubectl("get", "node", node, "-o", "json"))
    return str(next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready"))


def lose_node(data_dir: Path, node: str, link: str) -> None:
    """kill -9 the node's agent and containerd (never its pods' shims), then cut its link."""
    base = str(data_dir / "nodes" / node)
    for pid in cleanup.pids_referencing(base):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv]
        if any(w == "agent" for w in words[:4]) or os.path.basename(words[0]) == "containerd":
            os.kill(pid, signal.SIGKILL)
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=link)
        assert index, f"no link {link}"
        ipr.link("set", index=index[0], state="down")


def test_the_seeds_workflow(data_dir: Path, tmp_path: Path) -> None:
    kubectl = Kubectl(data_dir / "kubeconfig", tmp_path / "kube-cache")
    up = Up(data_dir, "--nodes", "3")
    try:
        up.wait_for("Ready in", READY_TIMEOUT)
        # 1-4: submit, schedule, replicate, pull and start
        kubectl("apply", "-f", str(EXAMPLES))
        kubectl("patch", "deployment", "web", "--type", "strategic", "-p",
                json.dumps(TOLERATIONS))
        assert kubectl.run("rollout", "status", "deployment/web", "--timeout=120s",
                           timeout=130).returncode == 0
        pods = eventually(lambda: ready_web(kubectl, 3), 60, "3 ready web pods")
        spread = {p["spec"]["nodeName"] for p in pods}
        assert len(spread) >= 2, f"3 replicas all on {spread}"

        # 5: the service from a pod on a node without a web pod if any, else another node
        service = json.loads(kubectl("get", "service", "web", "-o", "json"))
        cluster_ip = service["spec"]["clusterIP"]
        client_node = sorted(set(NODE_ADDRESS) - spread or set(NODE_ADDRESS) - {
            pods[0]["spec"]["nodeName"]})[0]
        assert "hello from web-" in reach_from_pod(kubectl, "by-ip", client_node, cluster_ip)
        assert "hello from web-" in reach_from_pod(kubectl, "by-name", client_node, "web")
        assert "hello from web-" in reach_from_pod(
            kubectl, "by-fqdn", client_node, "web.default.svc.cluster.local")
        for address in NODE_ADDRESS.values():
            assert node_port(address).startswith(b"hello from web-")

        # 6: the objects are in etcd, as JSON under /registry
        endpoint = json.loads((data_dir / "up.json").read_text())["ports"]["etcd_client"]
        raw = subprocess.run(
            ["etcdctl", f"--endpoints=http://127.0.0.1:{endpoint}", "get",
             "/registry/deployments/default/web", "--print-value-only"],
            capture_output=True, text=True, timeout=30, check=True,
            env={**os.environ, "ETCDCTL_API": "3"})
        assert json.loads(raw.stdout)["spec"]["replicas"] == 3
        keys = subprocess.run(
            ["etcdctl", f"--endpoints=http://127.0.0.1:{endpoint}", "get", "/registry/pods/",
             "--prefix", "--keys-only"], capture_output=True, text=True, timeout=30,
            check=True, env={**os.environ, "ETCDCTL_API": "3"}).stdout.split()
        assert {f"/registry/pods/default/{p['metadata']['name']}" for p in pods} <= set(keys)

        # scale to 5, then a rolling update to another image
        kubectl("scale", "deployment/web", "--replicas=5")
        eventually(lambda: ready_web(kubectl, 5), 90, "5 ready web pods")
        # another reference to an image the mirror has (Always, as `image: busybox` defaulted)
        kubectl("set", "image", "deployment/web", "web=docker.io/library/busybox:latest")
        rollout = kubectl.run("rollout", "status", "deployment/web", "--timeout=180s",
                              timeout=200)
        assert rollout.returncode == 0, (rollout.stdout, rollout.stderr,
                                         kubectl("get", "rs,pods", "-o", "wide"),
                                         kubectl("get", "deployment", "web", "-o", "yaml"))
        pods = eventually(lambda: ready_web(kubectl, 5), 60, "5 ready updated pods")
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {
            "docker.io/library/busybox:latest"}
        history = kubectl("rollout", "history", "deployment/web")
        assert "1" in history and "3" in history  # apply, tolerations patch, set image

        # the README's walk-through: a throw-away client pod, logs, an undo
        # (the sleep: output written before kubectl attaches is lost, on any cluster)
        run = kubectl.run("run", "client", "-i", "--rm", "--restart=Never", "--image=busybox",
                          "--", "sh", "-c", "sleep 2; wget -qO- http://web:80/", timeout=120)
        assert run.returncode == 0 and "hello from web-" in run.stdout, (run.stdout, run.stderr)
        assert 'pod "client" deleted' in run.stdout + run.stderr
        kubectl("logs", "deployment/web")
        kubectl("rollout", "undo", "deployment/web")
        assert kubectl.run("rollout", "status", "deployment/web", "--timeout=180s",
                           timeout=200).returncode == 0
        eventually(lambda: ready_web(kubectl, 5), 60, "5 ready pods after the undo")

        # node3 lost -> NotReady -> its pods recreated on node1 and node2
        lose_node(data_dir, "node3", "pn-v3")
        eventually(lambda: node_ready(kubectl, "node3") == "Unknown", 90, "node3 NotReady")

        def moved() -> list[dict[str, Any]] | None:
            found = ready_web(kubectl, 5)
            return found if found and all(
                p["spec"]["nodeName"] != "node3" for p in found) else None

        survivors = eventually(moved, 90, "5 ready web pods off node3")
        names = sorted(p["metadata"]["name"] for p in survivors)
    finally:
        code = up.stop()
    assert code == 0, up.output()
    assert leftovers(data_dir) == [], up.output()

    # the whole `up` again: the same objects, the same pods running, node3 back
    again = Up(data_dir, "--nodes", "3")
    try:
        again.wait_for("Ready in", READY_TIMEOUT)
        eventually(lambda: node_ready(kubectl, "node3") == "True", 60, "node3 Ready again")
        back = eventually(lambda: ready_web(kubectl, 5), 120, "5 ready web pods again")
        assert sorted(p["metadata"]["name"] for p in back) == names
        assert json.loads(kubectl("get", "service", "web", "-o", "json"))["spec"][
            "clusterIP"] == cluster_ip
        deadline = time.monotonic() + 60  # the pods evicted from node3 finish terminating
        while time.monotonic() < deadline and len(json.loads(kubectl(
                "get", "pods", "-l", "app=web", "-o", "json"))["items"]) != 5:
            time.sleep(1)
        eventually(lambda: node_port(NODE_ADDRESS["node3"]).startswith(b"hello from web-"),
                   30, "the NodePort on node3 again")
    finally:
        code = again.stop()
    assert code == 0, again.output()
    assert leftovers(data_dir) == [], again.output()
