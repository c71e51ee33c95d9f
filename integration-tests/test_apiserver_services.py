"""ClusterIPs and NodePorts of services, allocated by `pinnace apiserver` on a real etcd."""

from __future__ import annotations

import ipaddress
import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from harness import Kubectl

from pinnace.local.apiserver import APIServerProcess
from pinnace.local.etcd import Etcd

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")


@pytest.fixture
def ns(kubectl: Kubectl) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def get_svc(kubectl: Kubectl, name: str, ns: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", "svc", name, "-n", ns, "-o", "json")))


def test_kubernetes_service(kubectl: Kubectl, apiserver: APIServerProcess) -> None:
    row = kubectl("get", "svc", "kubernetes", "--no-headers").split()
    assert row[:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    endpoints = json.loads(kubectl("get", "endpoints", "kubernetes", "-o", "json"))
    subset = endpoints["subsets"][0]
    assert {"ip": "127.0.0.1"} in subset["addresses"]
    assert subset["ports"][0]["port"] == apiserver.port


def test_nodeport_service_gets_cluster_ip_and_node_port(kubectl: Kubectl, ns: str) -> None:
    assert kubectl("create", "service", "nodeport", "np", "--tcp=80:8080", "-n", ns).strip() \
        == "service/np created"
    spec = get_svc(kubectl, "np", ns)["spec"]
    assert ipaddress.ip_address(spec["clusterIP"]) in SERVICE_CIDR
    assert spec["clusterIP"] not in ("10.96.0.0", "10.96.0.1")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    node_port = spec["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    row = kubectl("get", "svc", "np", "-n", ns, "--no-headers").split()
    assert row[1:3] == ["NodePort", spec["clusterIP"]] and row[4] == f"80:{node_port}/TCP"


def test_requested_cluster_ip_once_then_released_by_delete(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "service", "clusterip", "fixed", "--tcp=80", "--clusterip=10.96.0.5",
            "-n", ns)
    assert get_svc(kubectl, "fixed", ns)["spec"]["clusterIP"] == "10.96.0.5"
    stderr = kubectl.fails("create", "service", "clusterip", "other", "--tcp=80",
                           "--clusterip=10.96.0.5", "-n", ns)
    # `kubectl create service` words it "error: failed to create ClusterIP service: <message>".
    assert ('Service "other" is invalid: spec.clusterIPs: Invalid value: '
            '[]string{"10.96.0.5"}: failed to allocate IP 10.96.0.5: provided IP is already '
            'allocated') in stderr
    stderr = kubectl.fails("create", "service", "clusterip", "outside", "--tcp=80",
                           "--clusterip=10.0.0.5", "-n", ns)
    assert ("failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid "
            "range. The range of valid IPs is 10.96.0.0/12") in stderr
    kubectl("delete", "service", "fixed", "-n", ns)
    kubectl("create", "service", "clusterip", "other", "--tcp=80", "--clusterip=10.96.0.5",
            "-n", ns)
    assert get_svc(kubectl, "other", ns)["spec"]["clusterIP"] == "10.96.0.5"
    kubectl("delete", "service", "other", "-n", ns)


def test_requested_node_port_once(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "service", "nodeport", "a", "--tcp=80:8080", "--node-port=30080",
            "-n", ns)
    stderr = kubectl.fails("create", "service", "nodeport", "b", "--tcp=80:8080",
                           "--node-port=30080", "-n", ns)
    assert ('Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
            "provided port is already allocated") in stderr
    # NodePort -> ClusterIP gives the port back; the ClusterIP stays.
    ip = get_svc(kubectl, "a", ns)["spec"]["clusterIP"]
    kubectl("patch", "svc", "a", "-n", ns, "-p", '{"spec":{"type":"ClusterIP"}}')
    spec = get_svc(kubectl, "a", ns)["spec"]
    assert spec["clusterIP"] == ip and "nodePort" not in spec["ports"][0]
    kubectl("create", "service", "nodeport", "b", "--tcp=80:8080", "--node-port=30080",
            "-n", ns)
    kubectl("delete", "service", "a", "b", "-n", ns)


def test_headless_and_external_name_get_no_ip(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "service", "clusterip", "hl", "--clusterip=None", "-n", ns)
    assert get_svc(kubectl, "hl", ns)["spec"]["clusterIPs"] == ["None"]
    kubectl("create", "service", "externalname", "ext", "--external-name=example.com",
            "-n", ns)
    assert "clusterIP" not in get_svc(kubectl, "ext", ns)["spec"]


# -- two apiservers on one etcd ------------------------------------------------------------------

SMALL_CIDR = "10.200.0.0/26"  # 62 addresses: 10.200.0.1 for `kubernetes`, 61 for the test
SMALL_PORTS = "30000-30099"


@pytest.fixture
def two_apiservers(workdir: Path) -> Iterator[tuple[APIServerProcess, APIServerProcess]]:
    """Two apiservers with small ranges, started at once on an etcd of their own."""
    base = workdir / f"ha-{uuid.uuid4().hex[:6]}"
    etcd = Etcd(base / "etcd")
    flags = ("--service-cluster-ip-range", SMALL_CIDR, "--service-node-port-range", SMALL_PORTS)
    servers = [APIServerProcess(base / name, etcd.endpoint, name=name, extra=flags)
               for name in ("apiserver-a", "apiserver-b")]
    try:
        etcd.start()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda server: server.start(timeout=60), servers))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        etcd.stop()


def post_service(server: APIServerProcess, context: ssl.SSLContext,
                 name: str) -> tuple[int, dict[str, Any]]:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": name}}}
    request = urllib.request.Request(
        f"{server.url}/api/v1/namespaces/default/services", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.load(exc))


def test_two_apiservers_never_hand_out_the_same_ip(
        two_apiservers: tuple[APIServerProcess, APIServerProcess]) -> None:
    a, b = two_apiservers
    contexts = {a.name: a.ssl_context(), b.name: b.ssl_context()}
    jobs = [(a if i % 2 else b, f"s{i}") for i in range(61)]
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda job: post_service(job[0], contexts[job[0].name], job[1]),
                                jobs))
    assert [code for code, _ in results] == [201] * 61, [r for c, r in results if c != 201][:3]
    ips = [svc["spec"]["clusterIP"] for _, svc in results]
    ports = [svc["spec"]["ports"][0]["nodePort"] for _, svc in results]
    network = ipaddress.ip_network(SMALL_CIDR)
    assert len(set(ips)) == 61 and "10.200.0.1" not in ips
    assert all(ipaddress.ip_address(ip) in network for ip in ips)
    assert len(set(ports)) == 61 and all(30000 <= p <= 30099 for p in ports)
    # The range is now full, whichever apiserver is asked.
    code, status = post_service(a, contexts[a.name], "one-too-many")
    assert (code, status["message"]) == (
        500, "Internal error occurred: failed to allocate a serviceIP: range is full")
    # Only one `kubernetes` service, with the first address, made by whichever started first.
    request = urllib.request.Request(f"{b.url}/api/v1/namespaces/default/services/kubernetes")
    with urllib.request.urlopen(request, timeout=10, context=contexts[b.name]) as response:
        assert json.load(response)["spec"]["clusterIP"] == "10.200.0.1"
