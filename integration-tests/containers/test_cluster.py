"""The seed's scenario with nodes inside docker containers (testcontainers on a private dockerd).

Two node containers (containerd + `pinnace agent` + `pinnace netproxy`, flags from systemd/env)
join a control plane on the host; examples/' Deployment (3 replicas) and NodePort Service run
across both, with the built-in busybox imported by each agent from its --images-dir (no
registry); a pod on one node reaches the service by ClusterIP and by DNS name (netproxy's DNS on
the node's own address) and the web pods on both nodes by pod IP; the host reaches the NodePort
on every node; `docker kill` of a node -> NotReady -> its pods recreated on the other; then the
teardown itself, checked to leave no container, image, daemon, link, mount or cgroup.
The tests run in this order and share one cluster (session fixtures in conftest.py).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from containers.cluster import ContainerCluster
from containers.dockerd import PrivateDockerd
from containers.nodeimage import NodeImage
from harness import Kubectl
from test_e2e import TOLERATIONS, node_port, node_ready, ready_web
from upcluster import eventually

TOP = Path(__file__).resolve().parents[2]
EXAMPLES = TOP / "examples"
IMAGE = "localhost/busybox:1"  # built by `pinnace images build`, preloaded from --images-dir

CLIENT = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: client
    image: localhost/busybox:1
    command: ["sh", "-c", "for t in {targets}; do ok=;
              for i in $(seq 30); do
                if out=$(timeout 3 wget -qO- http://$t/); then echo \\"$t: $out\\"; ok=1; break; fi;
                sleep 1;
              done; [ -n \\"$ok\\" ] || {{ echo \\"$t: unreachable\\"; exit 1; }};
              done"]
"""


def manifests() -> str:
    """examples/ with the image the nodes have, and NoExecute tolerations of 2 s (so the last
    test need not wait the default 300 s before pods leave a lost node)."""
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Deployment":
                spec = doc["spec"]["template"]["spec"]
                for container in spec["containers"]:
                    container["image"] = IMAGE
                spec.update(TOLERATIONS["spec"]["template"]["spec"])
            if doc:
                docs.append(doc)
    return yaml.safe_dump_all(docs)


def run_client(kubectl: Kubectl, name: str, node: str, targets: list[str]) -> str:
    """A pod on `node` fetching http://TARGET/ for each target; its log."""
    kubectl("apply", "-f", "-",
            input=CLIENT.format(name=name, node=node, targets=" ".join(targets)))

    def done() -> str:
        phase = str(json.loads(kubectl("get", "pod", name, "-o", "json"))["status"].get(
            "phase", ""))
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = eventually(done, 120, f"{name} finished")
    logs = kubectl("logs", name)
    assert phase == "Succeeded", f"{name} on {node}: {logs}"
    return logs


def serves_node_port(address: str) -> bool:
    return node_port(address).startswith(b"hello from web-")


def nodes_json(kubectl: Kubectl) -> dict[str, dict[str, Any]]:
    items = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n for n in items}


def test_nodes_register_and_become_ready(container_cluster: ContainerCluster,
                                          ct_kubectl: Kubectl) -> None:
    names = set(container_cluster.nodes)

    def all_ready() -> bool:
        found = nodes_json(ct_kubectl)
        return set(found) == names and all(node_ready(ct_kubectl, n) == "True" for n in names)

    try:
        eventually(all_ready, 90, f"nodes {sorted(names)} Ready")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{container_cluster.logs()}") from None
    for name, node in nodes_json(ct_kubectl).items():
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert addresses["InternalIP"] == container_cluster.nodes[name].address
        assert node["spec"]["podCIDR"].startswith("10.244.")


def test_deployment_runs_across_both_nodes(container_cluster: ContainerCluster,
                                           ct_kubectl: Kubectl) -> None:
    ct_kubectl("apply", "-f", "-", input=manifests())
    rollout = ct_kubectl.run("rollout", "status", "deployment/web", "--timeout=120s",
                             timeout=130)
    assert rollout.returncode == 0, (rollout.stderr, ct_kubectl("get", "pods", "-o", "wide"),
                                     container_cluster.logs())
    pods = eventually(lambda: ready_web(ct_kubectl, 3), 60, "3 ready web pods")
    assert {p["spec"]["nodeName"] for p in pods} == set(container_cluster.nodes)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {IMAGE}


def test_a_pod_reaches_the_service_by_cluster_ip_and_dns(container_cluster: ContainerCluster,
                                                         ct_kubectl: Kubectl) -> None:
    pods = eventually(lambda: ready_web(ct_kubectl, 3), 60, "3 ready web pods")
    cluster_ip = json.loads(ct_kubectl("get", "service", "web", "-o", "json"))["spec"][
        "clusterIP"]
    pod_ips = [f"{p['status']['podIP']}:8080" for p in pods]  # on both nodes
    targets = [cluster_ip, "web", "web.default.svc.cluster.local", *pod_ips]
    logs = run_client(ct_kubectl, "client", "cnode1", targets)
    for target in targets:
        assert f"{target}: hello from web-" in logs, logs


def test_node_port_from_the_host(container_cluster: ContainerCluster) -> None:
    for node in container_cluster.nodes.values():
        eventually(partial(serves_node_port, node.address), 30,
                   f"NodePort 30080 on {node.name} ({node.address}) from the host")


def test_a_killed_node_goes_not_ready_and_its_pods_move(container_cluster: ContainerCluster,
                                                        ct_kubectl: Kubectl) -> None:
    lost, survivor = container_cluster.nodes["cnode2"], container_cluster.nodes["cnode1"]
    lost.kill()
    eventually(lambda: node_ready(ct_kubectl, lost.name) == "Unknown", 60,
               f"{lost.name} NotReady")

    def moved() -> list[dict[str, Any]] | None:
        found = ready_web(ct_kubectl, 3)
        return found if found and all(
            p["spec"]["nodeName"] == survivor.name for p in found) else None

    eventually(moved, 90, f"3 ready web pods on {survivor.name}")
    eventually(partial(serves_node_port, survivor.address), 30,
               f"the NodePort on {survivor.name}")


def test_teardown_leaves_nothing(container_cluster: ContainerCluster, node_image: NodeImage,
                                 dockerd: PrivateDockerd) -> None:
    client = node_image.client
    container_cluster.stop()
    assert client.containers.list(all=True) == []
    node_image.remove()
    assert client.images.list() == []
    dockerd.stop()
    assert dockerd.popen is not None and dockerd.popen.poll() is not None
    assert container_cluster.leftovers() + dockerd.leftovers() == []
