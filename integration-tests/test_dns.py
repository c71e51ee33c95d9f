"""Cluster DNS against the real apiserver: services made with kubectl, answers over UDP and TCP.

The DNS server runs in this process (informers over the API, as the netproxy daemon runs it) on
127.0.0.1 with a random port; busybox's nslookup, which only speaks to port 53, asks it inside a
network namespace of our own, where the test binds the server's sockets. Every object, socket
and namespace made here is removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from harness import Kubectl
from pyroute2 import netns

from controlplane.client import kubeconfig
from controlplane.client.rest import RESTClient
from netproxy.dns.main import ClusterDNS, DNSConfig
from netproxy.dns.server import DNSServer, bind_sockets
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.netns import NetworkNamespace

LOCAL = "127.0.0.1"
MANIFESTS = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.200.5
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-manual
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: [10.244.7.2], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.244.7.3], conditions: {ready: true}}
- {addresses: [10.244.7.4], hostname: db-2, conditions: {ready: false}}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: www.example.com}
"""


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = f"dns-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("apply", "-n", name, "-f", "-", input=MANIFESTS)
    try:
        yield name
    finally:
        kubectl.run("delete", "-n", name, "services,endpointslices", "--all", "--wait=false")
        kubectl.run("delete", "namespace", name, "--wait=false")


@pytest.fixture
async def cluster_dns(apiserver: APIServerProcess) -> AsyncIterator[ClusterDNS]:
    client = RESTClient(kubeconfig.load(apiserver.kubeconfig), user_agent="pinnace-dns-test")
    server = ClusterDNS(client, DNSConfig(address=LOCAL, port=0))
    try:
        await server.start(sync_timeout=30)
        yield server
    finally:
        await server.stop()
        await client.close()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `check` until true: the informers see API writes shortly after kubectl returns."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "DNS never caught up"
        await asyncio.sleep(0.05)


async def ask(port: int, name: str, rdtype: str = "A", *,
              tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, LOCAL, timeout=2, port=port)
    return await dns.asyncquery.udp(query, LOCAL, timeout=2, port=port)


def texts(response: dns.message.Message, rdtype: int | None = None) -> list[str]:
    return sorted(rr.to_text() for rrset in response.answer for rr in rrset
                  if rdtype is None or rrset.rdtype == rdtype)


def has(cluster_dns: ClusterDNS, name: str, count: int = 1) -> Callable[[], bool]:
    def check() -> bool:
        answer = cluster_dns.resolve(name, "A")
        return answer is not None and len(answer.answer) == count
    return check


async def test_services_made_with_kubectl_resolve(cluster_dns: ClusterDNS, ns: str) -> None:
    domain = f"{ns}.svc.cluster.local"
    await eventually(has(cluster_dns, f"db.{domain}", 2))
    await eventually(has(cluster_dns, f"ext.{domain}"))
    port = cluster_dns.server.port
    for tcp in (False, True):
        web = await ask(port, f"web.{domain}", tcp=tcp)
        assert texts(web) == ["10.96.200.5"] and web.answer[0].ttl == 30
        kubernetes = await ask(port, "kubernetes.default.svc.cluster.local", tcp=tcp)
        assert texts(kubernetes) == ["10.96.0.1"]
    assert texts(await ask(port, f"db.{domain}")) == ["10.244.7.2", "10.244.7.3"]
    assert texts(await ask(port, f"db-0.db.{domain}")) == ["10.244.7.2"]
    srv = await ask(port, f"_pg._tcp.db.{domain}", "SRV")
    assert texts(srv) == [f"0 50 5432 10-244-7-3.db.{domain}.", f"0 50 5432 db-0.db.{domain}."]
    http = await ask(port, f"_http._tcp.web.{domain}", "SRV", tcp=True)
    assert texts(http) == [f"0 100 80 web.{domain}."]
    assert texts(await ask(port, f"ext.{domain}")) == ["www.example.com."]
    assert texts(await ask(port, "5.200.96.10.in-addr.arpa", "PTR")) == [f"web.{domain}."]
    assert texts(await ask(port, "2.7.244.10.in-addr.arpa", "PTR")) == [f"db-0.db.{domain}."]
    for missing in (f"nope.{domain}", f"db-2.db.{domain}", f"web.{ns}.{domain}"):
        response = await ask(port, missing)
        assert response.rcode() == dns.rcode.NXDOMAIN, missing
        assert response.authority[0].rdtype == dns.rdatatype.SOA
    nodata = await ask(port, f"web.{domain}", "AAAA")
    assert (nodata.rcode(), nodata.answer) == (dns.rcode.NOERROR, [])
    assert (await ask(port, "www.example.com")).rcode() == dns.rcode.SERVFAIL  # no upstream


async def test_answers_follow_the_api(cluster_dns: ClusterDNS, kubectl: Kubectl,
                                      ns: str) -> None:
    domain = f"{ns}.svc.cluster.local"
    await eventually(has(cluster_dns, f"db.{domain}", 2))
    patch = '[{"op": "replace", "path": "/endpoints/2/conditions/ready", "value": true}]'
    await asyncio.to_thread(kubectl, "patch", "endpointslice", "db-manual", "-n", ns,
                            "--type=json", "-p", patch)
    await eventually(has(cluster_dns, f"db.{domain}", 3))
    assert texts(await ask(cluster_dns.server.port, f"db-2.db.{domain}")) == ["10.244.7.4"]
    await asyncio.to_thread(kubectl, "delete", "service", "web", "-n", ns)
    await eventually(lambda: (a := cluster_dns.resolve(f"web.{domain}", "A")) is not None
                     and a.rcode == "NXDOMAIN")
    assert (await ask(cluster_dns.server.port, f"web.{domain}")).rcode() == dns.rcode.NXDOMAIN


def bind_in_namespace(name: str) -> tuple[socket.socket, socket.socket]:
    """Bind 127.0.0.1:53 inside namespace `name` from a thread of its own (setns is per thread)."""
    result: list[tuple[socket.socket, socket.socket]] = []
    errors: list[BaseException] = []

    def inside() -> None:
        try:
            netns.setns(name)
            result.append(bind_sockets(LOCAL, 53))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=inside, name=f"dns-bind-{name}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


async def nslookup(namespace: str, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{namespace}", "busybox", "nslookup", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode()


async def test_busybox_nslookup(cluster_dns: ClusterDNS, ns: str) -> None:
    domain = f"{ns}.svc.cluster.local"
    await eventually(has(cluster_dns, f"db.{domain}", 2))
    namespace = NetworkNamespace(f"pn-dns-{os.getpid() % 0x10000:04x}")
    server = DNSServer(cluster_dns.resolve, address=LOCAL, port=53)
    try:
        await asyncio.to_thread(namespace.create)  # pyroute2's sync calls run their own loop
        sockets = bind_in_namespace(namespace.name)
        await server.start(sockets=sockets)
        code, out = await nslookup(namespace.name, f"web.{domain}", LOCAL)
        assert code == 0 and "Address: 10.96.200.5" in out, out
        code, out = await nslookup(namespace.name, f"db.{domain}", LOCAL)
        assert "Address: 10.244.7.2" in out and "Address: 10.244.7.3" in out, out
        code, out = await nslookup(namespace.name, "-type=srv", f"_pg._tcp.db.{domain}", LOCAL)
        assert f"db-0.db.{domain}" in out, out
        code, out = await nslookup(namespace.name, "10.96.200.5", LOCAL)
        assert f"web.{domain}" in out, out
        code, out = await nslookup(namespace.name, f"nope.{domain}", LOCAL)
        assert code != 0 and "NXDOMAIN" in out, out
    finally:
        await server.close()
        await asyncio.to_thread(namespace.remove)
