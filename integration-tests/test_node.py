"""The same CRI path inside a node: a network namespace of ours with its own containerd."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from harness import NodeEnv, Pods, pinnace
from pyroute2 import NetNS

from cri.runtime import RuntimeClient
from pinnace.local.registry import Registry


def links_in(netns: str, name: str) -> list[int]:
    with NetNS(netns) as ns:
        indexes: list[int] = ns.link_lookup(ifname=name)
        return indexes


async def test_pod_runs_inside_the_node(node: NodeEnv, node_cri: RuntimeClient,
                                        pods: Pods) -> None:
    config = pods.sandbox_config("in-node")
    sandbox_id = await node_cri.run_pod_sandbox(config)
    status = await node_cri.pod_sandbox_status(sandbox_id)
    pod_ip = status.status.network.ip
    assert pod_ip.startswith("10.253.2.")
    container_id = await node_cri.create_container(
        sandbox_id, pods.container_config("web", "localhost/busybox:1",
                                          ["sh", "-c", "echo node-pod > /tmp/index.html;"
                                           " exec httpd -f -p 8080 -h /tmp"]), config)
    await node_cri.start_container(container_id)
    # The pod is reachable from the node's namespace (its bridge), not from ours.
    fetch = subprocess.run(
        ["nsenter", f"--net=/run/netns/{node.node.netns.name}", "--", "busybox", "sh", "-c",
         f"for i in 1 2 3 4 5 6 7 8 9 10; do timeout 2 wget -qO- http://{pod_ip}:8080/ && exit;"
         " sleep 0.2; done; exit 1"],
        capture_output=True, text=True, timeout=30)
    assert fetch.stdout == "node-pod\n", fetch.stderr
    assert await asyncio.to_thread(links_in, node.node.netns.name, "cni0")
    result = await node_cri.exec_sync(container_id, ["hostname"], 10)
    assert result.stdout == b"in-node\n"


async def test_pull_from_the_nodes_registry(node: NodeEnv, node_cri: RuntimeClient,
                                            registry: Registry, images: dict[str, Path],
                                            pods: Pods) -> None:
    # Pushed to the registry in our namespace; the node's registry serves the same storage on
    # the node's own loopback, where the node's containerd pulls it.
    pushed = pinnace("images", "push", str(images["busybox"]),
                     f"{registry.host}/pinnace/busybox:node")
    assert pushed.returncode == 0, pushed.stderr
    ref = f"{node.registry.host}/pinnace/busybox:node"
    assert (await node_cri.pull_image(ref)).startswith("sha256:")
    config = pods.sandbox_config("pulled-in-node")
    sandbox_id = await node_cri.run_pod_sandbox(config)
    container_id = await node_cri.create_container(
        sandbox_id, pods.container_config("c", ref, ["sleep", "30"]), config)
    await node_cri.start_container(container_id)
    result = await node_cri.exec_sync(container_id, ["echo", "pulled-in-node"], 10)
    assert result.stdout == b"pulled-in-node\n"
