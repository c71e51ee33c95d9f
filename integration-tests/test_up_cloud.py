"""`pinnace up` with the external cloud provider: its agents run with `--cloud-provider=external`,
so each Node registers with the taint `node.cloudprovider.kubernetes.io/uninitialized=true:
NoSchedule`; the cloud-controller-manager (local provider) initialises it (providerID
`local://<name>`, its addresses) and removes the taint within a second or two; a pod created
before then is bound only after the taint is gone from its node (ordered by resourceVersion,
which etcd's single revision counter makes exact), and runs.

Nodes and pods are watched with the real kubectl from the moment the apiserver answers, so the
tainted registration itself is seen. The test skips while another `pinnace up` runs here.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from harness import Kubectl
from upcluster import NODES, Up, eventually, leftovers

READY_TIMEOUT = 120.0
UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"
EARLY = """apiVersion: v1
kind: Pod
metadata: {name: early}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: localhost/busybox:1
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"""


class Watch:
    """`kubectl get RESOURCE -w -o json` in the background: every object version it prints."""

    def __init__(self, kubectl: Kubectl, resource: str) -> None:
        self.seen: list[dict[str, Any]] = []
        self.popen = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
             str(kubectl.cache_dir), "get", resource, "-w", "-o", "json",
             "--request-timeout=0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self.popen.stdout:
            buffer += line
            while buffer.strip():
                try:
                    obj, end = decoder.raw_decode(buffer.lstrip())
                except json.JSONDecodeError:
                    break  # the object is not complete yet
                buffer = buffer.lstrip()[end:]
                self.seen.append(obj)

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [o for o in list(self.seen) if o["metadata"]["name"] == name]

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def tainted(node: dict[str, Any]) -> bool:
    return any(t.get("key") == UNINITIALIZED for t in node.get("spec", {}).get("taints") or [])


def create_early_pod(kubectl: Kubectl) -> None:
    """As soon as the apiserver takes it (retried: it may be still starting up)."""
    deadline = time.monotonic() + 30
    while True:
        result = kubectl.run("apply", "-f", "-", input=EARLY)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.2)


def test_up_nodes_are_initialised_by_the_cloud_before_pods_land(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    kubectl = Kubectl(data_dir / "kubeconfig", tmp_path / "kube-cache")
    up = Up(data_dir, "--nodes", "2")
    watches: list[Watch] = []
    try:
        up.wait_for("apiserver ready at", READY_TIMEOUT)
        nodes, pods = Watch(kubectl, "nodes"), Watch(kubectl, "pods")
        watches += [nodes, pods]
        create_early_pod(kubectl)
        up.wait_for("Ready in", READY_TIMEOUT)

        def initialised() -> dict[str, dict[str, Any]]:
            latest = {n: versions[-1] for n in NODES if (versions := nodes.versions(n))}
            done = len(latest) == len(NODES) and not any(tainted(n) for n in latest.values())
            return latest if done else {}

        latest = eventually(initialised, 30, "both nodes initialised by the cloud")
        untainted_at: dict[str, int] = {}
        for name in NODES:
            versions = nodes.versions(name)
            assert tainted(versions[0]), f"{name} was first seen without the taint: {versions[0]}"
            assert versions[0]["spec"]["taints"] == [
                {"key": UNINITIALIZED, "value": "true", "effect": "NoSchedule"}]
            annotations = versions[0]["metadata"].get("annotations") or {}
            assert annotations.get("alpha.kubernetes.io/provided-node-ip", "").startswith(
                "10.254.0.")
            untainted_at[name] = min(rv(v) for v in versions if not tainted(v))
            node = latest[name]
            assert node["spec"]["providerID"] == f"local://{name}"
            assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "netns"
            assert {a["type"] for a in node["status"]["addresses"]} == {"InternalIP",
                                                                       "Hostname"}
        # The taint goes within a second or two of registration (the CCM's watch, one write).
        full = json.loads(kubectl("get", "events", "-A", "-o", "json"))["items"]
        synced = [e for e in full if e["reason"] == "Synced"
                  and e["involvedObject"].get("kind") == "Node"]
        assert {e["involvedObject"]["name"] for e in synced} >= set(NODES), synced

        def bound() -> dict[str, Any] | None:
            return next((p for p in pods.versions("early") if p["spec"].get("nodeName")), None)

        binding = eventually(bound, 60, "the early pod bound")
        node_name = binding["spec"]["nodeName"]
        created = pods.versions("early")[0]
        assert rv(binding) > untainted_at[node_name], (
            f"bound at rv {rv(binding)} while {node_name} was tainted until rv "
            f"{untainted_at[node_name]}")
        print(f"early pod created at rv {rv(created)}, nodes untainted at {untainted_at}, "
              f"bound to {node_name} at rv {rv(binding)}")
        eventually(lambda: any(p.get("status", {}).get("phase") == "Running"
                               for p in pods.versions("early")), 60, "the early pod Running")
    finally:
        for watch in watches:
            watch.stop()
        code = up.stop()
    assert code == 0, up.output()
    assert leftovers(data_dir) == [], up.output()
