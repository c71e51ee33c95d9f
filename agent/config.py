"""The agent's effective configuration: one dataclass, logged once at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.gc.policy import GCPolicy


@dataclass(frozen=True)
class AgentConfig:
    node_name: str
    node_ip: str
    containerd: str  # the CRI socket
    root_dir: Path = Path("/var/lib/pinnace/agent")  # pods/<uid>/volumes, state
    log_dir: Path = Path("/var/log/pods")
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    pod_cidr: str = ""
    cni_conf_dir: Path = Path("/etc/cni/net.d")
    images_dir: Path | None = None  # image tars imported at start (air-gapped nodes)
    port: int = 10250  # the agent's HTTPS server (logs, exec)
    node_labels: dict[str, str] = field(default_factory=dict)
    resolv_conf: Path = Path("/etc/resolv.conf")
    gc: GCPolicy = field(default_factory=GCPolicy)  # container and image garbage collection

    @property
    def pods_dir(self) -> Path:
        return self.root_dir / "pods"
