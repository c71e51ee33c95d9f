"""Node containers: a bridge of ours in the root namespace, and one docker container per node.

Each container runs with `--network none`; `attach` then creates a veth pair whose node end is
made directly inside the container's network namespace (found by its PID) as eth0, the other end
enslaved to our bridge. So node traffic (apiserver, pod to pod via netproxy's host-gw routes,
NodePort from the host) only crosses links this module made; docker's own networking is off.
A container gets PLATFORM.md's flags for a privileged-like node (`RUN_KWARGS`, the tmpfs mounts),
the host's software read-only (nodeimage.host_mounts), and the node's /etc/pinnace,
/etc/containerd and images directory as scripts/install-systemd.sh node laid them out.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

from containers.server import install
from pyroute2 import IPRoute, NetlinkError
from testcontainers.core.container import DockerContainer

from pinnace.local.links import delete_link

log = logging.getLogger(__name__)
RUN_KWARGS = {
    "cap_add": ["ALL"], "cap_drop": ["SYS_RESOURCE"],  # --privileged needs SYS_RESOURCE
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "network_mode": "none",
}
TMPFS = {"/var/lib/containerd": "exec", "/run": "exec"}  # no overlay snapshots on overlay
# containerd's CRI cannot write oom_score_adj without CAP_SYS_RESOURCE (PLATFORM.md)
OOM_LINE = "  restrict_oom_score_adj = true\n"
CRI_SECTION = '[plugins."io.containerd.grpc.v1.cri"]\n'


class Bridge:
    """Our bridge `name` with the first address of `network`; nodes get .11, .12, ..."""

    def __init__(self, name: str, network: str) -> None:
        self.name = name
        self.network = ipaddress.IPv4Network(network)
        self.veths: list[str] = []  # every veth made (kept after removal, for `leftovers`)
        self.made = False

    @property
    def address(self) -> str:
        return str(self.network.network_address + 1)

    def node_address(self, index: int) -> str:
        return str(self.network.network_address + 10 + index)

    def create(self) -> None:
        with IPRoute() as ipr:
            if ipr.link_lookup(ifname=self.name):
                raise FileExistsError(f"link {self.name} exists already (not made by this run)")
            ipr.link("add", ifname=self.name, kind="bridge")
            self.made = True
            index = ipr.link_lookup(ifname=self.name)[0]
            ipr.addr("add", index=index, address=self.address,
                     prefixlen=self.network.prefixlen)
            ipr.link("set", index=index, state="up")

    def attach(self, veth: str, pid: int) -> None:
        """A veth pair: `veth` here in the bridge, eth0 inside the network namespace of `pid`."""
        with IPRoute() as ipr:
            ipr.link("add", ifname=veth, kind="veth", peer={"ifname": "eth0", "net_ns_pid": pid})
            self.veths.append(veth)
            index = ipr.link_lookup(ifname=veth)[0]
            bridge = ipr.link_lookup(ifname=self.name)[0]
            ipr.link("set", index=index, master=bridge, state="up")

    def remove(self) -> None:
        """Delete our veths (gone already with their containers' namespaces) and the bridge."""
        for name in [*self.veths, *([self.name] if self.made else [])]:
            try:
                delete_link(name)
            except NetlinkError as exc:
                log.debug("link %s already gone: %s", name, exc)
        self.made = False

    def leftovers(self) -> list[str]:
        with IPRoute() as ipr:
            return [f"link {n}" for n in [self.name, *self.veths] if ipr.link_lookup(ifname=n)]


def provision(base: Path, certs: Path, name: str, address: str, server: str) -> Path:
    """The node's files as scripts/install-systemd.sh node lays them out (images included);
    containerd's config gets the one line PLATFORM.md says this machine needs."""
    root = base / "root"
    install("node", root, certs, "--name", name, "--ip", address, "--server-ip", server)
    config = root / "etc" / "containerd" / "config.toml"
    text = config.read_text()
    if OOM_LINE not in text:
        config.write_text(text.replace(CRI_SECTION, CRI_SECTION + OOM_LINE, 1))
    (base / "logs").mkdir(parents=True, exist_ok=True)
    return root


class ContainerNode:
    """One node: its container (testcontainers) and its veth into `bridge`."""

    def __init__(self, *, name: str, index: int, image: str, bridge: Bridge, base: Path,
                 host_mounts: list[str], veth: str) -> None:
        self.name = name
        self.address = bridge.node_address(index)
        self.bridge = bridge
        self.base = base
        self.veth = veth
        root = base / "root"
        container = (DockerContainer(image, name=name)
                     .with_kwargs(hostname=name, entrypoint=["/pinnace-node"], **RUN_KWARGS)
                     .with_env("NODE_IP", self.address)
                     .with_env("NODE_PREFIX", str(bridge.network.prefixlen))
                     .with_env("PYTHON", sys.executable)
                     .with_volume_mapping(str(root / "etc/pinnace"), "/etc/pinnace", "ro")
                     .with_volume_mapping(str(root / "etc/containerd"), "/etc/containerd", "ro")
                     .with_volume_mapping(str(root / "var/lib/pinnace/images"),
                                          "/var/lib/pinnace/images", "ro")
                     .with_volume_mapping(str(base / "logs"), "/var/log/pinnace", "rw"))
        for path in host_mounts:
            container = container.with_volume_mapping(path, path, "ro")
        for path, options in TMPFS.items():
            container = container.with_tmpfs_mount(path, options)
        self.container = container
        self.started = False

    def start(self) -> None:
        self.container.start()
        self.started = True
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        self.bridge.attach(self.veth, int(wrapped.attrs["State"]["Pid"]))

    def kill(self) -> None:
        """`docker kill`: every process of the node dies at once, its link with its namespace."""
        self.container.get_wrapped_container().kill()

    def remove(self) -> None:
        if self.started:
            try:
                self.container.get_wrapped_container().remove(force=True, v=True)
            except Exception as exc:  # noqa: BLE001 - gone already is fine at teardown
                log.debug("container %s: %s", self.name, exc)
            self.started = False

    def logs(self, lines: int = 25) -> str:
        """The tails of the node's logs, for failure messages."""
        parts = []
        for log_file in sorted((self.base / "logs").glob("*.log")):
            tail = log_file.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {self.name} {log_file.name}\n" + "\n".join(tail))
        return "\n".join(parts)
