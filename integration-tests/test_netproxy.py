"""`pinnace netproxy` on real iptables, inside network namespaces this module makes and removes.

Three namespaces stand in for machines: NODE runs the netproxy (its own iptables, routes and
sysctls), PODS holds two "pods" (busybox httpd on 10.250.0.2 and 10.250.0.3, port 8080) behind a
veth into NODE, and OUTSIDE is a client beyond the node (a veth into NODE, routing the service
range through it). The apiserver listens on the root namespace's loopback, so the module forwards
a port on NODE's loopback to it (a socket keeps the namespace it was created in). Services and
EndpointSlices (manual, no selector) are created with the real kubectl. The root namespace's
iptables are never touched: every command runs under `nsenter --net=/run/netns/<ours>`.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from harness import Kubectl
from pyroute2 import NetNS

from netproxy.chains import JUMPS
from netproxy.model import Endpoint, ServicePort, ServicePortName
from netproxy.routes import ROUTE_PROTO
from netproxy.rules import RenderOptions, render
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.netns import NetworkNamespace
from pinnace.local.process import Process, netns_prefix

T = TypeVar("T")
SUFFIX = f"{os.getpid() % 0x10000:04x}"
NODE = f"np-node-{SUFFIX}"
NODE_IP, OUTSIDE_IP = "192.168.250.1", "192.168.250.2"
BACKENDS = {"10.250.0.2": "backend-a", "10.250.0.3": "backend-b"}
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a fresh thread that has entered network namespace `name`."""
    box: dict[str, Any] = {}

    def target() -> None:
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = OSError(err, os.strerror(err))
                return
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def http_get(netns: str, host: str, port: int, timeout: float = 3.0) -> str:
    """GET / from inside `netns`; the body, stripped. Connection errors propagate."""
    def get() -> str:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[-1].decode().strip()
    return in_netns(netns, get)


def serving(netns: str, host: str, port: int) -> Callable[[], bool]:
    return lambda: bool(http_get(netns, host, port, timeout=0.5))


def run_in(netns: str, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*netns_prefix(netns), *argv], capture_output=True, text=True,
                          input=input, timeout=60)


def saved(netns: str, binary: str = "iptables-save", *args: str) -> str:
    """iptables-save output without comments and counters (comparable across time)."""
    out = run_in(netns, binary, *args).stdout
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in out.splitlines()
                     if not line.startswith("#"))


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `check` every 20 ms; return the seconds it took; fail naming `what`."""
    start = time.monotonic()
    last: BaseException | None = None
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - not yet
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error {last!r})")


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
    """A veth pair made inside `ns_a`, its peer moved to `ns_b`: never in the root namespace."""
    with NetNS(ns_a) as a:
        a.link("add", ifname=name_a, kind="veth", peer=name_b)
        a.link("set", index=a.link_lookup(ifname=name_b)[0], net_ns_fd=ns_b)


def configure(netns: str, ifname: str, addresses: list[str],
              routes: list[tuple[str, str]]) -> None:
    with NetNS(netns) as ns:
        index = ns.link_lookup(ifname=ifname)[0]
        for address in addresses:
            ns.addr("add", index=index, address=address, prefixlen=24)
        ns.link("set", index=index, state="up")
        for dst, gateway in routes:
            ns.route("add", dst=dst, gateway=gateway)


class Forwarder:
    """A TCP listener on a namespace's loopback relaying to the root namespace's loopback."""

    def __init__(self, netns: str, target_port: int) -> None:
        self.target_port = target_port
        self.sockets: list[socket.socket] = []

        def listen() -> socket.socket:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(16)
            return s
        self.listener = in_netns(netns, listen)
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return
            self.sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()
        for s in self.sockets:
            s.close()


@dataclass
class Lab:
    node: str  # network namespace names
    pods: str
    outside: str
    base: Path
    baseline: str = ""  # NODE's iptables-save before the netproxy started


def add_foreign_rules(netns: str) -> None:
    """Somebody else's rules on the node (as CNI or a firewall has): they must survive us."""
    for rule in (["-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "RETURN"],
                 ["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"],
                 ["-t", "mangle", "-A", "POSTROUTING", "-p", "udp", "--dport", "9", "-j",
                  "ACCEPT"]):
        assert run_in(netns, "iptables", *rule).returncode == 0


@pytest.fixture(scope="module")
def lab(workdir: Path) -> Iterator[Lab]:
    names = [NetworkNamespace(f"pnp{SUFFIX}{role}") for role in ("node", "pods", "out")]
    lab = Lab(names[0].name, names[1].name, names[2].name, base=workdir / "netproxy")
    root_before = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    httpds: list[Process] = []
    try:
        for n in names:
            n.create()
        veth(lab.node, "pods0", lab.pods, "eth0")
        veth(lab.node, "ext0", lab.outside, "eth0")
        configure(lab.node, "pods0", ["10.250.0.1"], [])
        configure(lab.node, "ext0", [NODE_IP], [("0.0.0.0/0", OUTSIDE_IP)])
        configure(lab.pods, "eth0", list(BACKENDS), [("0.0.0.0/0", "10.250.0.1")])
        configure(lab.outside, "eth0", [OUTSIDE_IP], [("10.96.0.0/12", NODE_IP)])
        for ip, body in BACKENDS.items():
            home = lab.base / body
            home.mkdir(parents=True, exist_ok=True)
            (home / "index.html").write_text(body + "\n")
            httpd = Process(body, ["busybox", "httpd", "-f", "-p", f"{ip}:8080", "-h",
                                   str(home)], lab.base / f"{body}.log", netns=lab.pods)
            httpds.append(httpd)
            httpd.start()
            httpd.wait_ready(serving(lab.pods, ip, 8080))
        add_foreign_rules(lab.node)
        lab.baseline = saved(lab.node)
        yield lab
    finally:
        for process in httpds:
            process.stop()
        for n in names:
            n.remove()
        root_after = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert ("KUBE-SERVICES" in root_after) == ("KUBE-SERVICES" in root_before)


@pytest.fixture(scope="module")
def kctl(apiserver: APIServerProcess, workdir: Path) -> Kubectl:
    return Kubectl(apiserver.kubeconfig, workdir / "netproxy-kube-cache")


@dataclass
class Web:
    namespace: str
    cluster_ip: str
    node_port: int


def slice_manifest(namespace: str, *ips: str) -> str:
    return json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-manual", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]})


@pytest.fixture(scope="module")
def web(kctl: Kubectl) -> Iterator[Web]:
    """A NodePort Service without selector, its named port resolved by a manual slice."""
    namespace = f"np-{uuid.uuid4().hex[:8]}"
    kctl("create", "namespace", namespace)
    kctl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                            "namespace": namespace},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80,
                                                "targetPort": "web"}]}}))
    kctl("apply", "-f", "-", input=slice_manifest(namespace, *BACKENDS))
    spec = json.loads(kctl("get", "service", "web", "-n", namespace, "-o", "json"))["spec"]
    try:
        yield Web(namespace, spec["clusterIP"], spec["ports"][0]["nodePort"])
    finally:
        kctl.run("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def netproxy(lab: Lab, apiserver: APIServerProcess, web: Web) -> Iterator[Process]:
    forwarder = Forwarder(lab.node, apiserver.port)
    config = yaml.safe_load(apiserver.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
    kubeconfig = lab.base / "netproxy.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    process = Process("netproxy", [
        sys.executable, "-m", "pinnace", "netproxy", "--kubeconfig", str(kubeconfig),
        "--node-name", NODE, "--cluster-cidr", "10.250.0.0/16",
        "--iptables-min-sync-period", "100ms", "--dns-address", "127.0.0.1", "-v", "2",
    ], lab.base / "netproxy.log", netns=lab.node)
    process.start()
    try:
        process.wait_ready(lambda: bool(http_get(lab.node, web.cluster_ip, 80, timeout=0.5)),
                           timeout=30)
        yield process
    finally:
        process.stop()
        forwarder.close()


def bodies(netns: str, host: str, port: int, n: int) -> set[str]:
    return {http_get(netns, host, port) for _ in range(n)}


def test_cluster_ip_from_the_node_balances_across_both_endpoints(
        lab: Lab, web: Web, netproxy: Process) -> None:
    assert bodies(lab.node, web.cluster_ip, 80, 40) == set(BACKENDS.values())
    assert run_in(lab.node, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"


def test_cluster_ip_and_node_port_from_outside_the_node(lab: Lab, web: Web,
                                                        netproxy: Process) -> None:
    assert bodies(lab.outside, web.cluster_ip, 80, 20) == set(BACKENDS.values())
    assert bodies(lab.outside, NODE_IP, web.node_port, 20) == set(BACKENDS.values())
    with pytest.raises(OSError):  # NodePorts are on the node's addresses only
        http_get(lab.outside, NODE_IP, web.node_port + 1, timeout=1)


def test_session_affinity_pins_a_client(lab: Lab, web: Web, kctl: Kubectl,
                                        netproxy: Process) -> None:
    kctl("patch", "service", "web", "-n", web.namespace, "--type=merge", "-p",
         json.dumps({"spec": {"sessionAffinity": "ClientIP"}}))
    try:
        wait_for(lambda: "--rcheck" in saved(lab.node, "iptables-save", "-t", "nat"), 10,
                 "the affinity rules")
        assert len(bodies(lab.node, web.cluster_ip, 80, 15)) == 1
    finally:
        kctl("patch", "service", "web", "-n", web.namespace, "--type=merge", "-p",
             json.dumps({"spec": {"sessionAffinity": "None"}}))
        wait_for(lambda: "--rcheck" not in saved(lab.node, "iptables-save", "-t", "nat"), 10,
                 "the affinity rules to go")


def test_the_daemon_serves_cluster_dns_too(lab: Lab, web: Web, netproxy: Process) -> None:
    """Wiring only (netproxy.dns has its own tests): the name answers with the ClusterIP."""
    import dns.message
    import dns.query

    def ask() -> list[str]:
        query = dns.message.make_query(f"web.{web.namespace}.svc.cluster.local", "A")
        answer = dns.query.udp(query, "127.0.0.1", port=53, timeout=2)
        return [item.address for rrset in answer.answer for item in rrset]

    wait_for(lambda: in_netns(lab.node, ask) == [web.cluster_ip], 15, "the DNS answer")


def refused(netns: str, host: str, port: int) -> bool:
    try:
        http_get(netns, host, port, timeout=1)
    except ConnectionRefusedError:
        return True
    return False


def test_no_endpoints_rejects_and_traffic_follows_the_endpoints(
        lab: Lab, web: Web, kctl: Kubectl, netproxy: Process) -> None:
    kctl("apply", "-f", "-", input=slice_manifest(web.namespace))
    wait_for(lambda: refused(lab.node, web.cluster_ip, 80), 10, "REJECT from the ClusterIP")
    assert refused(lab.outside, NODE_IP, web.node_port)
    assert f'"{web.namespace}/web:http has no endpoints"' in saved(lab.node, "iptables-save",
                                                                  "-t", "filter")
    kctl("apply", "-f", "-", input=slice_manifest(web.namespace, "10.250.0.3"))
    wait_for(lambda: http_get(lab.node, web.cluster_ip, 80) == "backend-b", 10,
             "the one endpoint left")
    assert bodies(lab.node, web.cluster_ip, 80, 10) == {"backend-b"}
    kctl("apply", "-f", "-", input=slice_manifest(web.namespace, *BACKENDS))
    wait_for(lambda: bodies(lab.node, web.cluster_ip, 80, 20) == set(BACKENDS.values()), 10,
             "both endpoints again")


def test_stale_udp_flows_are_cleared(lab: Lab, web: Web, kctl: Kubectl,
                                     netproxy: Process) -> None:
    kctl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp",
                                                            "namespace": web.namespace},
        "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}))
    udp_slice = json.loads(slice_manifest(web.namespace, "10.250.0.2"))
    udp_slice["metadata"].update(name="udp-manual",
                                 labels={"kubernetes.io/service-name": "udp"})
    udp_slice["ports"] = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    kctl("apply", "-f", "-", input=json.dumps(udp_slice))
    cluster_ip = json.loads(kctl("get", "service", "udp", "-n", web.namespace, "-o", "json")
                            )["spec"]["clusterIP"]
    wait_for(lambda: f"-d {cluster_ip}/32" in saved(lab.node, "iptables-save", "-t", "nat"),
             10, "the UDP service's rules")

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"ping", (cluster_ip, 53))

    def flows() -> str:
        return run_in(lab.node, "conntrack", "-L", "-p", "udp", "--orig-dst", cluster_ip).stdout

    def flow_to_endpoint() -> bool:
        in_netns(lab.node, send)  # again: the sync that added the rules clears the service IP
        return "src=10.250.0.2" in flows()  # the reply direction: DNATed to the endpoint

    wait_for(flow_to_endpoint, 10, "a UDP flow through the service")
    udp_slice["endpoints"] = []
    kctl("apply", "-f", "-", input=json.dumps(udp_slice))
    wait_for(lambda: "10.250.0.2" not in flows(), 10, "the stale flow to be deleted")


def our_routes(netns: str) -> dict[str, str]:
    with NetNS(netns) as ns:
        return {f"{r.get('dst')}/{r['dst_len']}": str(r.get("gateway"))
                for r in ns.route("dump", family=socket.AF_INET, proto=ROUTE_PROTO)}


def node_object(kctl: Kubectl, name: str, pod_cidr: str, ip: str) -> None:
    kctl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}}))
    kctl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"addresses": [{"type": "InternalIP", "address": ip}]}}))


def test_pod_routes_follow_the_nodes(lab: Lab, kctl: Kubectl, netproxy: Process) -> None:
    peer = f"np-peer-{SUFFIX}"
    node_object(kctl, NODE, "10.251.1.0/24", NODE_IP)
    node_object(kctl, peer, "10.251.7.0/24", OUTSIDE_IP)
    try:
        wait_for(lambda: our_routes(lab.node) == {"10.251.7.0/24": OUTSIDE_IP}, 10,
                 "the route to the peer's pod CIDR")
    finally:
        kctl("delete", "node", peer)
    wait_for(lambda: our_routes(lab.node) == {}, 10, "the route to go with the node")


def test_an_external_flush_is_repaired(lab: Lab, web: Web, netproxy: Process) -> None:
    """What a firewall reload does: flush and delete everything, then put its own back."""
    for table in ("nat", "filter", "mangle"):
        assert run_in(lab.node, "iptables", "-t", table, "-F").returncode == 0
        assert run_in(lab.node, "iptables", "-t", table, "-X").returncode == 0
    add_foreign_rules(lab.node)
    with pytest.raises(OSError):
        http_get(lab.node, web.cluster_ip, 80, timeout=0.5)
    wait_for(lambda: bool(http_get(lab.node, web.cluster_ip, 80, timeout=0.5)), 20,
             "the canary to notice and the rules to come back")
    assert bodies(lab.outside, NODE_IP, web.node_port, 10) == set(BACKENDS.values())
    assert "KUBE-PROXY-CANARY" in saved(lab.node, "iptables-save", "-t", "mangle")


def test_cleanup_leaves_no_trace(lab: Lab, kctl: Kubectl, netproxy: Process) -> None:
    peer = f"np-peer2-{SUFFIX}"
    node_object(kctl, peer, "10.251.8.0/24", OUTSIDE_IP)
    try:
        wait_for(lambda: "10.251.8.0/24" in our_routes(lab.node), 10, "a route to clean up")
        netproxy.stop()
        result = run_in(lab.node, sys.executable, "-m", "pinnace", "netproxy", "--cleanup")
        assert result.returncode == 0, result.stderr
    finally:
        kctl("delete", "node", peer, NODE, "--ignore-not-found")
    after = saved(lab.node)
    assert "KUBE-" not in after
    assert after == lab.baseline  # foreign rules untouched, nothing of ours left
    assert our_routes(lab.node) == {}


def sample_rules() -> str:
    """Every rule shape: affinity, NodePort, UDP without endpoints, Local policy, externalIP."""
    a, b, c = (ServicePortName("ns", name, port, proto) for name, port, proto in
               (("a", "http", "TCP"), ("b", "", "UDP"), ("c", "p", "TCP")))
    services = {a: ServicePort(a, "10.96.0.10", 80, node_port=30080, sticky_seconds=60),
                b: ServicePort(b, "10.96.0.11", 53, "UDP"),
                c: ServicePort(c, "10.96.0.12", 80, external_local=True, node_port=30081,
                               external_ips=("1.2.3.4",))}
    endpoints = {a: (Endpoint("10.1.0.1", 8080), Endpoint("10.1.0.2", 8080)),
                 c: (Endpoint("10.1.0.3", 80, node_name="n1"), Endpoint("10.1.0.4", 80))}
    return render(services, endpoints, RenderOptions("n1", cluster_cidr="10.1.0.0/16",
                                                     localhost_nodeports=True)).text


IPTC_APPLY = """
import sys
from netproxy.chains import JUMPS
from netproxy.iptc_backend import IptcBackend
backend = IptcBackend()
backend.restore(sys.stdin.read())
for jump in JUMPS:
    assert backend.ensure_rule(jump.table, jump.chain, jump.args())
    assert not backend.ensure_rule(jump.table, jump.chain, jump.args())
"""


def test_python_iptables_backend_writes_what_iptables_legacy_restore_writes() -> None:
    text = sample_rules()
    names = [NetworkNamespace(f"pnp{SUFFIX}lg{i}") for i in (1, 2)]
    try:
        for n in names:
            n.create()
        legacy, iptc = (n.name for n in names)
        assert run_in(legacy, "iptables-legacy-restore", "--noflush", input=text).returncode == 0
        for jump in JUMPS:
            assert run_in(legacy, "iptables-legacy", "-t", jump.table, "-A", jump.chain,
                          *jump.args()).returncode == 0
        result = run_in(iptc, sys.executable, "-c", IPTC_APPLY, input=text)
        assert result.returncode == 0, result.stderr
        for table in ("nat", "filter"):
            assert saved(iptc, "iptables-legacy-save", "-t", table) == \
                saved(legacy, "iptables-legacy-save", "-t", table)
        assert "KUBE-SVC-" in saved(iptc, "iptables-legacy-save", "-t", "nat")
        assert "KUBE-" not in saved(iptc, "iptables-nft-save")  # legacy tables only
    finally:
        for n in names:
            n.remove()
