"""The plan of a local cluster: every address, CIDR, port, path and command line, computed purely.

`plan_cluster` turns `pinnace up`'s flags (and the ports an earlier run chose, so the next run
resumes the same cluster) into a `ClusterPlan`; the `*_argv` functions give each component the
same flags its systemd unit would use. Nothing here touches the machine, so all of it is unit
tested. The numbering: node i (1-based) is `node<i>` in namespace `pn-node<i>`, linked to the
root namespace's bridge `pn-br0` (10.254.0.1/24) as 10.254.0.(10+i), with pods in 10.244.i.0/24.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "pn-br0"
LINK_NETWORK = ipaddress.IPv4Network("10.254.0.0/24")
GATEWAY = "10.254.0.1"  # the bridge's address: the apiserver and registry as nodes see them
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/12"
LB_POOL = "10.254.1.0/24"  # LoadBalancer addresses (cloud-controller-manager), via node1
MAX_NODES = 200  # 10.254.0.11-210 and 10.244.1-200.0/24
DEFAULT_PORTS = {"apiserver": 6443, "etcd_client": 2379, "etcd_peer": 2380, "registry": 5000}
STICKY_PORTS = ("apiserver", "registry")
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL


@dataclass(frozen=True)
class Ports:
    """TCP ports of the root namespace's listeners (kept in DIR/up.json between runs)."""

    apiserver: int
    etcd_client: int
    etcd_peer: int
    registry: int

    def as_dict(self) -> dict[str, int]:
        return {"apiserver": self.apiserver, "etcd_client": self.etcd_client,
                "etcd_peer": self.etcd_peer, "registry": self.registry}


@dataclass(frozen=True)
class NodePlan:
    """One node: its namespace, link, addresses and directories."""

    index: int
    name: str
    netns: str
    veth: str  # the root-namespace end of its link into the bridge (the node's end is eth0)
    address: str
    pod_cidr: str
    base: Path  # DIR/nodes/<name>: containerd, CNI config, agent state, logs

    @property
    def socket(self) -> str:
        return str(self.base / "containerd" / "containerd.sock")

    @property
    def root_dir(self) -> Path:
        return self.base / "agent"

    @property
    def pod_log_dir(self) -> Path:
        return self.base / "pods"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def certs_d(self) -> Path:
        return self.base / "certs.d"


@dataclass(frozen=True)
class ClusterPlan:
    """Everything `pinnace up` will make, named before anything is made."""

    data_dir: Path
    nodes: tuple[NodePlan, ...]
    ports: Ports
    etcd_servers: str
    external_etcd: bool

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def kubeconfig_dir(self) -> Path:
        return self.data_dir / "kubeconfigs"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def local_url(self) -> str:
        """The apiserver as the host's clients reach it."""
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def bridge_url(self) -> str:
        """The apiserver as the nodes (and their pods) reach it."""
        return f"https://{GATEWAY}:{self.ports.apiserver}"

    @property
    def registry_host(self) -> str:
        return f"{GATEWAY}:{self.ports.registry}"

    def kubeconfig_of(self, identity: str) -> Path:
        return self.kubeconfig_dir / f"{identity}.kubeconfig"


def choose_ports(saved: Mapping[str, object], is_free: Callable[[int], bool],
                 pick_free: Callable[[], int]) -> Ports:
    """Keep each port an earlier run used (else the default) while it is free; else pick one.

    The apiserver's and the registry's ports are part of the cluster's state (the `kubernetes`
    endpoints, image references): when an earlier run's is taken, refuse rather than move."""
    chosen: dict[str, int] = {}
    for key, default in DEFAULT_PORTS.items():
        value = saved.get(key)
        kept = isinstance(value, int) and 0 < value < 65536
        port = value if isinstance(value, int) and kept else default
        if kept and key in STICKY_PORTS and not is_free(port):
            raise ValueError(f"port {port}, this cluster's {key} port since its first run, is "
                             "in use by another process: free it, or use another --data-dir")
        while not is_free(port) or port in chosen.values():
            port = pick_free()
        chosen[key] = port
    return Ports(**chosen)


def plan_cluster(data_dir: Path, *, nodes: int, ports: Ports,
                 etcd_endpoints: str = "") -> ClusterPlan:
    """Plan a cluster of `nodes` nodes under `data_dir` (absolute)."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")
    hosts = list(LINK_NETWORK.hosts())
    node_plans = tuple(
        NodePlan(index=i, name=f"node{i}", netns=f"pn-node{i}", veth=f"pn-v{i}",
                 address=str(hosts[9 + i]), pod_cidr=f"10.244.{i}.0/24",
                 base=data_dir / "nodes" / f"node{i}")
        for i in range(1, nodes + 1))
    servers = etcd_endpoints or f"http://127.0.0.1:{ports.etcd_client}"
    return ClusterPlan(data_dir=data_dir, nodes=node_plans, ports=ports, etcd_servers=servers,
                       external_etcd=bool(etcd_endpoints))


def path_problems(plan: ClusterPlan) -> list[str]:
    """Paths too long for a unix socket (containerd's sockets live under each node's dir)."""
    problems = []
    for node in plan.nodes:
        longest = node.socket + ".ttrpc"
        if len(longest.encode()) > UNIX_PATH_MAX:
            problems.append(f"{longest} is longer than a unix socket path may be "
                            f"({UNIX_PATH_MAX} bytes): choose a shorter --data-dir")
    return problems


def node_routes(plan: ClusterPlan, node: NodePlan) -> list[tuple[str, str]]:
    """(destination, gateway) routes in `node`'s namespace: every other node's pod CIDR."""
    return [(other.pod_cidr, other.address) for other in plan.nodes if other.name != node.name]


def root_routes(plan: ClusterPlan) -> list[tuple[str, str]]:
    """(destination, gateway) routes in the root namespace, so the host reaches every pod."""
    return [(node.pod_cidr, node.address) for node in plan.nodes]


def _pinnace(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinnace", *args]


def apiserver_argv(plan: ClusterPlan) -> list[str]:
    """Bound to every address (127.0.0.1 for the host, the bridge address for the nodes)."""
    pki = plan.pki_dir
    return _pinnace(
        "apiserver", "--etcd-servers", plan.etcd_servers,
        "--bind-address", "0.0.0.0", "--advertise-address", GATEWAY,
        "--secure-port", str(plan.ports.apiserver), "--cert-dir", str(pki),
        "--tls-cert-file", str(pki / "apiserver.crt"),
        "--tls-private-key-file", str(pki / "apiserver.key"),
        "--client-ca-file", str(pki / "ca.crt"),
        "--kubelet-client-certificate", str(pki / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key", str(pki / "apiserver-kubelet-client.key"),
        "--service-cluster-ip-range", SERVICE_CIDR)


def scheduler_argv(plan: ClusterPlan) -> list[str]:
    return _pinnace("scheduler", "--kubeconfig", str(plan.kubeconfig_of("scheduler")),
                    "--leader-elect=false")


def controller_manager_argv(plan: ClusterPlan, help_text: str = "") -> list[str]:
    """`--cluster-cidr` only once the controller-manager knows it (node IPAM)."""
    argv = _pinnace("controller-manager",
                    "--kubeconfig", str(plan.kubeconfig_of("controller-manager")),
                    "--leader-elect=false")
    if "--cluster-cidr" in help_text:
        argv += ["--cluster-cidr", CLUSTER_CIDR]
    return argv


def load_balancer_route(plan: ClusterPlan) -> tuple[str, str]:
    """The host's route to LoadBalancer addresses: node1, whose netproxy answers on them."""
    return (LB_POOL, plan.nodes[0].address)


def cloud_controller_manager_argv(plan: ClusterPlan) -> list[str]:
    return _pinnace("cloud-controller-manager",
                    "--kubeconfig", str(plan.kubeconfig_of("cloud-controller-manager")),
                    "--cloud-provider", "local",
                    "--cloud-config", str(plan.data_dir / "cloud" / "cloud.yaml"),
                    "--leader-elect=false")


def cloud_files(plan: ClusterPlan) -> dict[str, str]:
    """The local cloud provider's config and one instance file per node (see
    controlplane.cloud.local), as path relative to DIR/cloud -> text."""
    instances = plan.data_dir / "cloud" / "instances"
    files = {"cloud.yaml": f"loadBalancer:\n  addresses: [{LB_POOL}]\n"
                           f"instances:\n  directory: {instances}\n"}
    for node in plan.nodes:
        files[f"instances/{node.name}"] = (
            f"addresses: [{{type: InternalIP, address: {node.address}}}, "
            f"{{type: Hostname, address: {node.name}}}]\ninstanceType: netns\n")
    return files


def agent_argv(plan: ClusterPlan, node: NodePlan) -> list[str]:
    """Runs inside the node's namespace (the caller adds the nsenter prefix). With the
    external cloud provider the node registers tainted until the cloud-controller-manager has
    initialised it (providerID local://NAME, addresses)."""
    return _pinnace(
        "agent", "--kubeconfig", str(plan.kubeconfig_of(f"node-{node.name}")),
        "--node-name", node.name, "--node-ip", node.address, "--containerd", node.socket,
        "--cloud-provider", "external",
        "--root-dir", str(node.root_dir), "--pod-log-dir", str(node.pod_log_dir),
        "--pod-cidr", node.pod_cidr, "--cni-conf-dir", str(node.cni_conf_dir),
        "--cluster-dns", node.address,  # netproxy's DNS, on every node's own address
        "--tls-cert-file", str(plan.pki_dir / f"node-{node.name}-serving.crt"),
        "--tls-private-key-file", str(plan.pki_dir / f"node-{node.name}-serving.key"),
        "--client-ca-file", str(plan.pki_dir / "ca.crt"))


def netproxy_argv(plan: ClusterPlan, node: NodePlan, help_text: str) -> list[str]:
    """The flags netproxy's `--help` lists, of those kube-proxy would get here."""
    argv = _pinnace("netproxy", "--kubeconfig", str(plan.kubeconfig_of("netproxy")))
    optional = [("--hostname-override", node.name), ("--node-name", node.name),
                ("--node-ip", node.address), ("--cluster-cidr", CLUSTER_CIDR)]
    for flag, value in optional:
        if flag in help_text:
            argv += [flag, value]
    return argv


def registry_hosts(plan: ClusterPlan) -> dict[str, str]:
    """containerd's `certs.d` files: our registry over plain http, and as docker.io's mirror
    (so `image: busybox` resolves offline), as relative path -> hosts.toml text."""
    mirror = f'[host."http://{plan.registry_host}"]\n  capabilities = ["pull", "resolve"]\n'
    return {
        f"{plan.registry_host}/hosts.toml":
            f'server = "http://{plan.registry_host}"\n\n{mirror}',
        "docker.io/hosts.toml": f'server = "https://registry-1.docker.io"\n\n{mirror}',
    }
