"""netproxy's health checks on two nodes: Services' health check node ports, /healthz, /metrics.

Two network namespaces stand in for two nodes, each running a real `pinnace netproxy` (its own
iptables) against the session's apiserver (reached through a port forwarded onto each node's
loopback, as in test_netproxy.py). A LoadBalancer Service with externalTrafficPolicy Local gets
its healthCheckNodePort from the apiserver; its manual EndpointSlice puts the one endpoint on
node A. The port answers 200 on A and 503 on B, follows the endpoint when it moves, and closes
when the policy goes back to Cluster; /healthz, /livez and /metrics answer on both nodes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Kubectl
from test_netproxy import Forwarder, in_netns, wait_for

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.netns import NetworkNamespace
from pinnace.local.process import Process

SUFFIX = f"{os.getpid() % 0x10000:04x}"
NODES = (f"nph-a-{SUFFIX}", f"nph-b-{SUFFIX}")


def get(netns: str, port: int, path: str = "/", host: str = "127.0.0.1"
        ) -> tuple[int, Any]:
    """GET from inside `netns`: (status, body as JSON when it is JSON)."""
    def fetch() -> tuple[int, Any]:
        conn = http.client.HTTPConnection(host, port, timeout=3)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            text = response.read().decode()
            is_json = response.getheader("Content-Type", "").startswith("application/json")
            return response.status, json.loads(text) if is_json else text
        finally:
            conn.close()
    return in_netns(netns, fetch)


def healthz_ok(netns: str) -> Callable[[], bool]:
    return lambda: get(netns, 10256, "/healthz")[0] == 200


@dataclass
class Node:
    name: str
    netns: str
    process: Process


@pytest.fixture(scope="module")
def kctl(apiserver: APIServerProcess, workdir: Path) -> Kubectl:
    return Kubectl(apiserver.kubeconfig, workdir / "netproxy-health-kube-cache")


@pytest.fixture(scope="module")
def nodes(apiserver: APIServerProcess, workdir: Path) -> Iterator[tuple[Node, Node]]:
    """Two netproxies, each alone in a network namespace, DNS off (not tested here)."""
    base = workdir / "netproxy-health"
    base.mkdir(parents=True, exist_ok=True)
    namespaces = [NetworkNamespace(f"pnh{SUFFIX}{i}") for i in ("a", "b")]
    forwarders: list[Forwarder] = []
    started: list[Node] = []
    try:
        for name, ns in zip(NODES, namespaces, strict=True):
            ns.create()
            forwarder = Forwarder(ns.name, apiserver.port)
            forwarders.append(forwarder)
            config = yaml.safe_load(apiserver.kubeconfig.read_text())
            for cluster in config["clusters"]:
                cluster["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
            kubeconfig = base / f"{name}.kubeconfig"
            kubeconfig.write_text(yaml.safe_dump(config))
            process = Process(name, [
                sys.executable, "-m", "pinnace", "netproxy", "--kubeconfig", str(kubeconfig),
                "--node-name", name, "--iptables-min-sync-period", "100ms",
                "--enable-dns=false", "-v", "2"], base / f"{name}.log", netns=ns.name)
            process.start()
            started.append(Node(name, ns.name, process))
        for node in started:
            node.process.wait_ready(healthz_ok(node.netns), timeout=30)
        yield started[0], started[1]
    finally:
        for node in started:
            node.process.stop()
        for forwarder in forwarders:
            forwarder.close()
        for ns in namespaces:
            ns.remove()


def endpoint_slice(namespace: str, node: str) -> str:
    return json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "lb-manual", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": "lb"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.250.9.2"], "nodeName": node,
                       "conditions": {"ready": True}}]})


@dataclass
class Service:
    namespace: str
    health_port: int


@pytest.fixture(scope="module")
def service(kctl: Kubectl) -> Iterator[Service]:
    namespace = f"nph-{uuid.uuid4().hex[:8]}"
    kctl("create", "namespace", namespace)
    kctl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb", "namespace": namespace},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
    kctl("apply", "-f", "-", input=endpoint_slice(namespace, NODES[0]))
    spec = json.loads(kctl("get", "service", "lb", "-n", namespace, "-o", "json"))["spec"]
    try:
        yield Service(namespace, spec["healthCheckNodePort"])
    finally:
        kctl.run("delete", "namespace", namespace, "--wait=false")


def status(node: Node, port: int) -> int:
    return get(node.netns, port)[0]


def test_the_health_check_port_answers_200_only_where_the_endpoint_is(
        nodes: tuple[Node, Node], service: Service) -> None:
    a, b = nodes
    wait_for(lambda: status(a, service.health_port) == 200, 15, "200 on the endpoint's node")
    assert get(a.netns, service.health_port)[1] == {
        "service": {"namespace": service.namespace, "name": "lb"}, "localEndpoints": 1,
        "serviceProxyHealthy": True}
    wait_for(lambda: status(b, service.health_port) == 503, 15, "503 on the other node")
    assert get(b.netns, service.health_port)[1]["localEndpoints"] == 0


def test_the_answers_follow_the_endpoint_and_the_policy(
        nodes: tuple[Node, Node], service: Service, kctl: Kubectl) -> None:
    a, b = nodes
    kctl("apply", "-f", "-", input=endpoint_slice(service.namespace, NODES[1]))
    wait_for(lambda: (status(a, service.health_port), status(b, service.health_port)) ==
             (503, 200), 15, "the answers to swap")
    kctl("patch", "service", "lb", "-n", service.namespace, "--type=merge", "-p",
         json.dumps({"spec": {"externalTrafficPolicy": "Cluster"}}))

    def closed(node: Node) -> bool:
        try:
            status(node, service.health_port)
        except ConnectionRefusedError:
            return True
        return False

    wait_for(lambda: closed(a) and closed(b), 15, "the health check port to close")


def test_healthz_livez_and_metrics_on_every_node(nodes: tuple[Node, Node],
                                                 service: Service) -> None:
    for node in nodes:
        code, body = get(node.netns, 10256, "/healthz")
        assert code == 200, body
        assert set(body) == {"lastUpdated", "currentTime", "nodeEligible"}
        assert body["lastUpdated"] != "0001-01-01 00:00:00 +0000 UTC"  # it has synced
        assert get(node.netns, 10256, "/livez")[0] == 200
        code, text = get(node.netns, 10249, "/metrics")
        assert code == 200
        assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in text
        assert 'kubeproxy_proxy_healthz_total{code="200"}' in text
        with pytest.raises(ConnectionRefusedError):  # metrics are on loopback only
            in_netns(node.netns, metrics_elsewhere)


def metrics_elsewhere() -> None:
    """Metrics bound to 127.0.0.1 are not on other local addresses (127.0.0.2 here)."""
    with socket.create_connection(("127.0.0.2", 10249), timeout=1):
        pass
