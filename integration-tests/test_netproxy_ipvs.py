"""`pinnace netproxy --proxy-mode ipvs` on the real kernel, in network namespaces of our own.

Where the kernel has no ip_vs (our build machines), two tests run: the daemon refuses in one
plain line and exits non-zero, and the parts of IPVS mode that need no ip_vs (kube-ipvs0 with
the service addresses, the iptables helpers, `--cleanup`) run against the real kernel in a
throwaway namespace (`unshare -n`), with the IPVS table faked. Where ip_vs exists, the daemon
runs in a node namespace as in test_netproxy.py (whose helpers this reuses, unchanged): a
NodePort Service with a manual EndpointSlice in front of two busybox httpd "pods", reached by
ClusterIP from the node and from outside, by NodePort from outside, following endpoint changes;
`--cleanup` then removes only our virtual servers (someone else's, made with ipvsadm, stays).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from harness import Kubectl
from test_netproxy import (
    BACKENDS,
    NODE_IP,
    OUTSIDE_IP,
    SUFFIX,
    Forwarder,
    Lab,
    add_foreign_rules,
    configure,
    http_get,
    run_in,
    saved,
    serving,
    slice_manifest,
    veth,
    wait_for,
)

from netproxy.ipvs import unavailable_reason
from pinnace.local.apiserver import APIServerProcess
from pinnace.local.netns import NetworkNamespace
from pinnace.local.process import Process

IPVS_MISSING = unavailable_reason()
needs_ipvs = pytest.mark.skipif(IPVS_MISSING is not None, reason="this kernel has no ip_vs")
NODE = f"ipvs-node-{SUFFIX}"
FOREIGN_VS = "192.0.2.1:80"  # someone else's virtual server (ipvsadm): must survive us
REPO = Path(__file__).resolve().parent.parent


def pinnace(*args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pinnace", "netproxy", *args]
    if netns is not None:
        return run_in(netns, *argv)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


# -- runs everywhere ---------------------------------------------------------------------------

@pytest.mark.skipif(IPVS_MISSING is None, reason="this kernel has ip_vs")
def test_ipvs_mode_exits_non_zero_saying_the_kernel_has_no_ip_vs(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {}}]}))
    links_before = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    result = pinnace("--proxy-mode", "ipvs", "--kubeconfig", str(kubeconfig), "--node-name", "n")
    assert result.returncode == 1
    assert result.stderr == (
        "pinnace netproxy: --proxy-mode ipvs needs the ip_vs kernel module, which this kernel "
        "does not have (no IPVS generic netlink family); use --proxy-mode iptables\n")
    links_after = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert ("kube-ipvs0" in links_after) == ("kube-ipvs0" in links_before)  # nothing made


FRESH_NETNS_SCRIPT = textwrap.dedent("""
    import asyncio, errno, json, socket, subprocess, sys
    from pathlib import Path
    from netproxy.cleanup import cleanup_rules
    from netproxy.conntrack import FakeConntrack
    from netproxy.iptables import RestoreBackend
    from netproxy.ipvs.cleanup import cleanup
    from netproxy.ipvs.fake import FakeIPVS
    from netproxy.ipvs.link import IPRouteLink, LinkKindUnsupported
    from netproxy.ipvs.proxier import IPVSProxier
    from netproxy.ipvs.record import OwnershipRecord
    from netproxy.proxier import ProxierConfig
    from netproxy.routes import IPRouteNetlink

    def save():
        out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        return [l for l in out.splitlines() if not l.startswith("#")]

    def connect(port):
        try:
            socket.create_connection(("10.96.0.10", port), timeout=2).close()
            return "connected"
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc))

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for rule in (["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"],
                 ["-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "RETURN"],
                 ["-t", "mangle", "-A", "POSTROUTING", "-p", "udp", "-j", "ACCEPT"]):
        subprocess.run(["iptables", *rule], check=True)
    before = save()
    out = {}
    try:
        IPRouteLink("dummy").ensure()
        out["dummy"] = "created"
    except LinkKindUnsupported as exc:
        out["dummy"] = str(exc)
    link, backend = IPRouteLink(sys.argv[1]), RestoreBackend("iptables")
    record = OwnershipRecord(Path(sys.argv[2]))
    proxier = IPVSProxier(ProxierConfig("n1", min_sync_period=0.0), backend, FakeConntrack(),
                          IPRouteNetlink(), ipvs=FakeIPVS(), link=link, record=record)
    proxier.set_synced()
    proxier.on_service(None, {"metadata": {"namespace": "ns", "name": "web"},
                              "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}})
    asyncio.run(proxier.sync())
    out["error"] = proxier.stats.last_error
    out["bound"] = sorted(link.addresses())
    out["local_route"] = subprocess.run(["ip", "route", "show", "table", "local", "10.96.0.10"],
                                        capture_output=True, text=True).stdout.strip()
    listeners = []
    for port in (80, 2222):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(4)
        listeners.append(s)
    out["served_port"], out["other_port"] = connect(80), connect(2222)
    out["filter"] = [l for l in save() if "KUBE-IPVS-FILTER" in l]
    proxier.on_service({"metadata": {"namespace": "ns", "name": "web"}}, None)
    asyncio.run(proxier.sync())
    out["bound_after_delete"] = sorted(link.addresses())
    out["cleanup"] = cleanup(backend, None, link, record) + cleanup_rules(backend)
    out["link_after_cleanup"] = link.exists()
    out["same_as_before"] = save() == before
    print(json.dumps(out))
""")


@pytest.mark.parametrize("kind", ["bridge"])
def test_service_link_and_helper_rules_on_the_real_kernel(tmp_path: Path, kind: str) -> None:
    """Everything of IPVS mode but ip_vs itself, in a namespace that dies with the process."""
    result = subprocess.run(["unshare", "-n", sys.executable, "-c", FRESH_NETNS_SCRIPT, kind,
                             str(tmp_path / "ipvs.json")], capture_output=True, text=True,
                            timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["dummy"] in ("created", "--proxy-mode ipvs binds service addresses to a dummy "
                            "link kube-ipvs0, and this kernel has no dummy link type; use "
                            "--ipvs-link-kind bridge")
    assert out["error"] == "" and out["bound"] == ["10.96.0.10"]
    assert out["local_route"].startswith("local 10.96.0.10 dev kube-ipvs0")
    assert out["served_port"] == "connected"  # the Service's port passes the filter
    assert out["other_port"] == "ECONNREFUSED"  # any other port on a service IP: REJECT
    assert any("--dport 80 -j RETURN" in line for line in out["filter"])
    assert out["bound_after_delete"] == []
    assert out["cleanup"] == [] and not out["link_after_cleanup"]
    assert out["same_as_before"]


# -- runs where the kernel has ip_vs -----------------------------------------------------------

def link_kind(netns: str) -> str:
    """dummy, as kube-proxy, where the kernel has it; a bridge otherwise."""
    probe = run_in(netns, "ip", "link", "add", "ipvs-probe", "type", "dummy")
    if probe.returncode != 0:
        return "bridge"
    run_in(netns, "ip", "link", "del", "ipvs-probe")
    return "dummy"


@pytest.fixture(scope="module")
def lab(workdir: Path) -> Iterator[Lab]:
    if IPVS_MISSING is not None:
        pytest.skip("this kernel has no ip_vs")
    names = [NetworkNamespace(f"piv{SUFFIX}{role}") for role in ("node", "pods", "out")]
    lab = Lab(names[0].name, names[1].name, names[2].name, base=workdir / "netproxy-ipvs")
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
        assert run_in(lab.node, "ipvsadm", "-A", "-t", FOREIGN_VS, "-s", "wlc").returncode == 0
        lab.baseline = saved(lab.node)
        yield lab
    finally:
        for process in httpds:
            process.stop()
        for n in names:
            n.remove()


@pytest.fixture(scope="module")
def kctl(apiserver: APIServerProcess, workdir: Path) -> Kubectl:
    return Kubectl(apiserver.kubeconfig, workdir / "netproxy-ipvs-kube-cache")


@pytest.fixture(scope="module")
def web(lab: Lab, kctl: Kubectl) -> Iterator[tuple[str, str, int]]:
    """(namespace, ClusterIP, NodePort) of a NodePort Service with a manual EndpointSlice."""
    namespace = f"npiv-{uuid.uuid4().hex[:8]}"
    kctl("create", "namespace", namespace)
    kctl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                            "namespace": namespace},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80,
                                                "targetPort": "web"}]}}))
    kctl("apply", "-f", "-", input=slice_manifest(namespace, *BACKENDS))
    spec = json.loads(kctl("get", "service", "web", "-n", namespace, "-o", "json"))["spec"]
    try:
        yield namespace, spec["clusterIP"], spec["ports"][0]["nodePort"]
    finally:
        kctl.run("delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def netproxy(lab: Lab, apiserver: APIServerProcess, web: tuple[str, str, int]
             ) -> Iterator[Process]:
    forwarder = Forwarder(lab.node, apiserver.port)
    config = yaml.safe_load(apiserver.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
    kubeconfig = lab.base / "netproxy.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    process = Process("netproxy-ipvs", [
        sys.executable, "-m", "pinnace", "netproxy", "--kubeconfig", str(kubeconfig),
        "--node-name", NODE, "--cluster-cidr", "10.250.0.0/16", "--proxy-mode", "ipvs",
        "--ipvs-link-kind", link_kind(lab.node), "--ipvs-state-file",
        str(lab.base / "ipvs.json"), "--iptables-min-sync-period", "100ms",
        "--enable-dns=false", "-v", "2",
    ], lab.base / "netproxy.log", netns=lab.node)
    process.start()
    try:
        process.wait_ready(lambda: bool(http_get(lab.node, web[1], 80, timeout=0.5)),
                           timeout=30)
        yield process
    finally:
        process.stop()
        forwarder.close()


def bodies(netns: str, host: str, port: int, n: int) -> set[str]:
    return {http_get(netns, host, port) for _ in range(n)}


def ipvs_table(netns: str) -> str:
    return run_in(netns, "ipvsadm", "-Ln").stdout


@needs_ipvs
def test_cluster_ip_is_an_ipvs_virtual_server(lab: Lab, web: tuple[str, str, int],
                                              netproxy: Process) -> None:
    _, cluster_ip, _ = web
    table = ipvs_table(lab.node)
    assert f"TCP  {cluster_ip}:80 rr" in table
    assert all(f"-> {ip}:8080" in table for ip in BACKENDS)
    assert cluster_ip in run_in(lab.node, "ip", "-o", "addr", "show", "kube-ipvs0").stdout
    assert bodies(lab.node, cluster_ip, 80, 30) == set(BACKENDS.values())
    assert bodies(lab.outside, cluster_ip, 80, 20) == set(BACKENDS.values())


@needs_ipvs
def test_node_port_from_outside_the_node(lab: Lab, web: tuple[str, str, int],
                                         netproxy: Process) -> None:
    _, _, node_port = web
    assert f"TCP  {NODE_IP}:{node_port} rr" in ipvs_table(lab.node)
    assert bodies(lab.outside, NODE_IP, node_port, 20) == set(BACKENDS.values())


@needs_ipvs
def test_real_servers_follow_the_endpoints(lab: Lab, web: tuple[str, str, int], kctl: Kubectl,
                                           netproxy: Process) -> None:
    namespace, cluster_ip, _ = web
    first, second = list(BACKENDS)
    kctl("apply", "-f", "-", input=slice_manifest(namespace, first))
    try:
        wait_for(lambda: f"-> {second}:8080" not in ipvs_table(lab.node), 5, "the real server "
                 "to go")
        assert bodies(lab.node, cluster_ip, 80, 10) == {BACKENDS[first]}
    finally:
        kctl("apply", "-f", "-", input=slice_manifest(namespace, *BACKENDS))
        wait_for(lambda: f"-> {second}:8080" in ipvs_table(lab.node), 5, "it to come back")


@needs_ipvs
def test_cleanup_removes_only_ours(lab: Lab, web: tuple[str, str, int],
                                   netproxy: Process) -> None:
    netproxy.stop()
    result = pinnace("--cleanup", "--ipvs-state-file", str(lab.base / "ipvs.json"),
                     netns=lab.node)
    assert result.returncode == 0, result.stderr
    table = ipvs_table(lab.node)
    assert f"TCP  {FOREIGN_VS} wlc" in table and web[1] not in table
    assert f":{web[2]}" not in table
    assert run_in(lab.node, "ip", "link", "show", "kube-ipvs0").returncode != 0
    assert saved(lab.node) == lab.baseline
