"""The plan of `pinnace up`: addresses, CIDRs, ports, paths and each component's flags (pure)."""

from __future__ import annotations

import ipaddress
import itertools
import tomllib
from pathlib import Path

import pytest

from pinnace.up import plan as planning
from pinnace.up.plan import Ports, plan_cluster

PORTS = Ports(apiserver=6443, etcd_client=2379, etcd_peer=2380, registry=5000)
DIR = Path("/var/lib/pinnace")


def flags(argv: list[str]) -> dict[str, str]:
    """`--flag value` pairs of an argv (a flag followed by another flag maps to "")."""
    out = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            if "=" in arg:
                key, _, value = arg.partition("=")
                out[key] = value
            else:
                nxt = argv[i + 1] if i + 1 < len(argv) else ""
                out[arg] = "" if nxt.startswith("--") else nxt
    return out


def test_three_nodes_get_their_names_addresses_and_pod_cidrs() -> None:
    plan = plan_cluster(DIR, nodes=3, ports=PORTS)
    assert [(n.name, n.netns, n.veth, n.address, n.pod_cidr) for n in plan.nodes] == [
        ("node1", "pn-node1", "pn-v1", "10.254.0.11", "10.244.1.0/24"),
        ("node2", "pn-node2", "pn-v2", "10.254.0.12", "10.244.2.0/24"),
        ("node3", "pn-node3", "pn-v3", "10.254.0.13", "10.244.3.0/24"),
    ]
    assert plan.nodes[0].base == DIR / "nodes" / "node1"
    assert plan.nodes[0].socket == "/var/lib/pinnace/nodes/node1/containerd/containerd.sock"
    assert plan.kubeconfig == DIR / "kubeconfig"
    assert plan.local_url == "https://127.0.0.1:6443"
    assert plan.bridge_url == "https://10.254.0.1:6443"
    assert plan.etcd_servers == "http://127.0.0.1:2379" and not plan.external_etcd


def test_every_node_address_and_pod_cidr_is_distinct_and_inside_its_range() -> None:
    plan = plan_cluster(DIR, nodes=planning.MAX_NODES, ports=PORTS)
    addresses = [ipaddress.ip_address(n.address) for n in plan.nodes]
    cidrs = [ipaddress.IPv4Network(n.pod_cidr) for n in plan.nodes]
    assert len(set(addresses)) == len(addresses) and len(set(cidrs)) == len(cidrs)
    assert all(a in planning.LINK_NETWORK and str(a) != planning.GATEWAY for a in addresses)
    cluster = ipaddress.IPv4Network(planning.CLUSTER_CIDR)
    assert all(c.subnet_of(cluster) for c in cidrs)
    assert all(len(n.veth) <= 15 and len(n.netns) <= 32 for n in plan.nodes)


@pytest.mark.parametrize("nodes", [0, -1, planning.MAX_NODES + 1])
def test_node_count_out_of_range_is_refused(nodes: int) -> None:
    with pytest.raises(ValueError, match="--nodes must be between 1 and"):
        plan_cluster(DIR, nodes=nodes, ports=PORTS)


def test_external_etcd_replaces_the_local_one() -> None:
    plan = plan_cluster(DIR, nodes=1, ports=PORTS, etcd_endpoints="http://10.0.0.5:2379")
    assert plan.external_etcd
    assert flags(planning.apiserver_argv(plan))["--etcd-servers"] == "http://10.0.0.5:2379"


def test_host_gw_routes_lead_to_every_other_node_and_from_the_host_to_all() -> None:
    plan = plan_cluster(DIR, nodes=3, ports=PORTS)
    assert planning.node_routes(plan, plan.nodes[1]) == [
        ("10.244.1.0/24", "10.254.0.11"), ("10.244.3.0/24", "10.254.0.13")]
    assert planning.root_routes(plan) == [
        ("10.244.1.0/24", "10.254.0.11"), ("10.244.2.0/24", "10.254.0.12"),
        ("10.244.3.0/24", "10.254.0.13")]
    assert planning.node_routes(plan_cluster(DIR, nodes=1, ports=PORTS),
                                plan.nodes[0]) == []


def test_ports_of_an_earlier_run_are_kept_while_free() -> None:
    saved = {"apiserver": 7443, "etcd_client": 12379, "etcd_peer": 12380, "registry": 15000}
    ports = planning.choose_ports(saved, lambda p: True, lambda: 1)
    assert ports.as_dict() == saved


def test_taken_ports_are_replaced_and_never_shared() -> None:
    fresh = itertools.count(40000)
    taken = {6443, 2379}
    ports = planning.choose_ports({"registry": "junk"}, lambda p: p not in taken,
                                  lambda: next(fresh))
    assert ports == Ports(apiserver=40000, etcd_client=40001, etcd_peer=2380, registry=5000)
    clash = planning.choose_ports({"apiserver": 2380, "etcd_peer": 2380}, lambda p: True,
                                  lambda: next(fresh))
    assert clash.apiserver == 2380 and clash.etcd_peer != 2380


def test_apiserver_serves_every_address_and_advertises_the_bridge() -> None:
    plan = plan_cluster(DIR, nodes=1, ports=PORTS)
    argv = planning.apiserver_argv(plan)
    assert argv[1:4] == ["-m", "pinnace", "apiserver"]
    f = flags(argv)
    assert (f["--bind-address"], f["--advertise-address"]) == ("0.0.0.0", "10.254.0.1")
    assert f["--secure-port"] == "6443"
    assert f["--tls-cert-file"] == "/var/lib/pinnace/pki/apiserver.crt"
    assert f["--client-ca-file"] == "/var/lib/pinnace/pki/ca.crt"
    assert f["--kubelet-client-certificate"].endswith("apiserver-kubelet-client.crt")
    assert f["--service-cluster-ip-range"] == planning.SERVICE_CIDR


def test_control_plane_components_use_their_own_kubeconfigs_without_leader_election() -> None:
    plan = plan_cluster(DIR, nodes=1, ports=PORTS)
    sched = flags(planning.scheduler_argv(plan))
    assert sched == {"--kubeconfig": "/var/lib/pinnace/kubeconfigs/scheduler.kubeconfig",
                     "--leader-elect": "false"}
    cm = planning.controller_manager_argv(plan)
    assert "--cluster-cidr" not in cm
    assert flags(cm)["--kubeconfig"].endswith("controller-manager.kubeconfig")
    with_ipam = planning.controller_manager_argv(plan, "  --cluster-cidr CIDR  ...")
    assert flags(with_ipam)["--cluster-cidr"] == planning.CLUSTER_CIDR


def test_agent_flags_name_the_node_its_address_cidr_containerd_and_cloud() -> None:
    plan = plan_cluster(DIR, nodes=2, ports=PORTS)
    f = flags(planning.agent_argv(plan, plan.nodes[1]))
    assert f == {
        "--kubeconfig": "/var/lib/pinnace/kubeconfigs/node-node2.kubeconfig",
        "--node-name": "node2", "--node-ip": "10.254.0.12",
        "--containerd": "/var/lib/pinnace/nodes/node2/containerd/containerd.sock",
        "--cloud-provider": "external",
        "--root-dir": "/var/lib/pinnace/nodes/node2/agent",
        "--pod-log-dir": "/var/lib/pinnace/nodes/node2/pods",
        "--pod-cidr": "10.244.2.0/24",
        "--cni-conf-dir": "/var/lib/pinnace/nodes/node2/cni/net.d",
        "--cluster-dns": "10.254.0.12",
        "--tls-cert-file": "/var/lib/pinnace/pki/node-node2-serving.crt",
        "--tls-private-key-file": "/var/lib/pinnace/pki/node-node2-serving.key",
        "--client-ca-file": "/var/lib/pinnace/pki/ca.crt",
    }


def test_netproxy_gets_only_the_flags_its_help_lists() -> None:
    plan = plan_cluster(DIR, nodes=1, ports=PORTS)
    bare = flags(planning.netproxy_argv(plan, plan.nodes[0], ""))
    assert bare == {"--kubeconfig": "/var/lib/pinnace/kubeconfigs/netproxy.kubeconfig"}
    rich = flags(planning.netproxy_argv(plan, plan.nodes[0],
                                        "--hostname-override NAME --cluster-cidr CIDR"))
    assert rich["--hostname-override"] == "node1"
    assert rich["--cluster-cidr"] == planning.CLUSTER_CIDR
    assert "--node-ip" not in rich


def test_registry_hosts_make_our_registry_plain_http_and_docker_io_mirror() -> None:
    plan = plan_cluster(DIR, nodes=1, ports=PORTS)
    files = planning.registry_hosts(plan)
    ours = tomllib.loads(files["10.254.0.1:5000/hosts.toml"])
    assert ours["server"] == "http://10.254.0.1:5000"
    mirror = tomllib.loads(files["docker.io/hosts.toml"])
    assert mirror["server"] == "https://registry-1.docker.io"
    # containerd 1.6.20 rejects a hosts.toml without the capabilities (PLATFORM.md)
    for doc in (ours, mirror):
        assert doc["host"]["http://10.254.0.1:5000"]["capabilities"] == ["pull", "resolve"]


def test_a_data_dir_too_long_for_unix_sockets_is_reported() -> None:
    assert planning.path_problems(plan_cluster(DIR, nodes=2, ports=PORTS)) == []
    deep = Path("/tmp/" + "x" * 70)
    problems = planning.path_problems(plan_cluster(deep, nodes=1, ports=PORTS))
    assert len(problems) == 1 and "choose a shorter --data-dir" in problems[0]


def test_a_taken_apiserver_or_registry_port_of_an_earlier_run_is_refused() -> None:
    for key, port in (("apiserver", 7443), ("registry", 15000)):
        with pytest.raises(ValueError, match=f"port {port}, this cluster's {key} port"):
            planning.choose_ports({key: port}, port.__ne__, lambda: 1)
    # a default that is taken (no earlier run) simply moves
    fresh = itertools.count(41000)
    assert planning.choose_ports({}, lambda p: p != 6443, lambda: next(fresh)).apiserver == 41000
