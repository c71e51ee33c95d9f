"""`pinnace up` end to end: a 2-node cluster as a subprocess, driven by the real kubectl.

Up until its final line, both nodes Ready, a pod on node1 reaching a pod on node2 by IP (and
the host reaching it too), a scheduled pod pulling `busybox` through the registry's docker.io
mirror; then SIGTERM and nothing left (namespaces, bridge, processes naming the data dir,
mounts under it); then `up` again on the same dir finds the same objects, and a second `up`
beside it is refused. The bridge and node namespaces have machine-wide names: the test skips
while another `pinnace up` runs on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from harness import Kubectl
from upcluster import NODES, Up, eventually, leftovers

READY_TIMEOUT = 120.0
WEB = """apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node2
  containers:
  - name: web
    image: localhost/busybox:1
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-node2 > /www/index.html &&
              exec httpd -f -p 8080 -h /www"]
"""

CLIENT = """apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node1
  restartPolicy: Never
  containers:
  - name: client
    image: localhost/busybox:1
    imagePullPolicy: Never
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do
              timeout 3 wget -qO- http://{ip}:8080/ | grep hello-from-node2 && exit 0;
              sleep 0.5; done; exit 1"]
"""

SCHEDULED = """apiVersion: v1
kind: Pod
metadata: {name: scheduled}
spec:
  containers:
  - name: sleeper
    image: busybox
    command: ["sleep", "3600"]
"""


def pod(kubectl: Kubectl, name: str) -> dict[str, Any]:
    result = kubectl.run("get", "pod", name, "-o", "json")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def phase(kubectl: Kubectl, name: str) -> str:
    return str((pod(kubectl, name).get("status") or {}).get("phase", ""))


def test_up_two_nodes_then_sigterm_leaves_nothing_and_up_resumes(data_dir: Path,
                                                                tmp_path: Path) -> None:
    kubectl = Kubectl(data_dir / "kubeconfig", tmp_path / "kube-cache")
    up = Up(data_dir, "--nodes", "2")
    try:
        final = up.wait_for("Ready in", READY_TIMEOUT)
        assert f"export KUBECONFIG={data_dir / 'kubeconfig'}" in final
        nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
        ready = {n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"]
                                             if c["type"] == "Ready") for n in nodes}
        assert ready == {"node1": "True", "node2": "True"}, ready

        kubectl("apply", "-f", "-", input=WEB)
        web_ip = eventually(lambda: phase(kubectl, "web") == "Running"
                            and pod(kubectl, "web")["status"].get("podIP"), 60, "web Running")
        assert web_ip.startswith("10.244.2."), web_ip
        with urllib.request.urlopen(f"http://{web_ip}:8080/", timeout=5) as response:
            assert response.read() == b"hello-from-node2\n"  # the host reaches the pod

        kubectl("apply", "-f", "-", input=CLIENT.format(ip=web_ip))
        kubectl("apply", "-f", "-", input=SCHEDULED)
        eventually(lambda: phase(kubectl, "client") in ("Succeeded", "Failed"), 60,
                   "client done")
        client = pod(kubectl, "client")
        assert client["spec"]["nodeName"] == "node1"
        assert client["status"]["podIP"].startswith("10.244.1.")
        assert client["status"]["phase"] == "Succeeded", client["status"]
        # logs and exec go apiserver -> the agent's HTTPS server (its serving pair from `up`)
        assert "hello-from-node2" in kubectl("logs", "client")
        assert kubectl("exec", "web", "--", "cat", "/www/index.html") == "hello-from-node2\n"
        eventually(lambda: phase(kubectl, "scheduled") == "Running", 60, "scheduled Running")
        assert pod(kubectl, "scheduled")["spec"]["nodeName"] in NODES
    finally:
        code = up.stop()
    assert code == 0, up.output()
    assert leftovers(data_dir) == [], up.output()

    again = Up(data_dir, "--nodes", "2")
    try:
        again.wait_for("Ready in", READY_TIMEOUT)
        names = kubectl("get", "pods", "-o", "name").split()
        assert names == ["pod/client", "pod/scheduled", "pod/web"], names
        assert phase(kubectl, "client") == "Succeeded"
        eventually(lambda: phase(kubectl, "web") == "Running", 60, "web Running again")
        second = subprocess.run([sys.executable, "-m", "pinnace", "up", "--data-dir",
                                 str(data_dir)], capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert f"{data_dir} is running already (pid {again.popen.pid}" in second.stderr
    finally:
        code = again.stop()
    assert code == 0, again.output()
    assert leftovers(data_dir) == [], again.output()
    assert os.path.exists(data_dir / "etcd")  # kept for the next run
