"""The node manager's configuration: one frozen dataclass, the kubelet's defaults in one place.

The agent's main fills it from its flags (`--node-name`, `--node-ip`, `--pod-cidr`,
`--node-labels`, `--register-with-taints`, `--cloud-provider`, ...); tests shorten the periods and
pass a clock. `parse_taints` reads the taint flag as the kubelet does; `registration_taints` is
what a new Node carries (with an external cloud provider, the cloud's "uninitialized" taint).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.node import conditions
from controlplane.api import validation

Object = dict[str, Any]
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
CLOUD_PROVIDERS = ("", "external")  # --cloud-provider: the kubelet has no in-tree ones left
UNINITIALIZED_TAINT = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
                       "effect": "NoSchedule"}
PROVIDED_NODE_IP = "alpha.kubernetes.io/provided-node-ip"  # the annotation the CCM reads


def _now() -> datetime:
    return datetime.now(UTC)


def parse_taint(text: str) -> Object:
    """A --register-with-taints entry, "key=value:Effect" or "key:Effect", as a Taint; a
    ValueError worded as the kubelet's (key a qualified name, value a label value)."""
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"invalid taint spec: {text}: want key[=value]:Effect")
    key_value, effect = parts
    if effect not in EFFECTS:
        raise ValueError(f"invalid taint effect: {effect}, unsupported taint effect "
                         f"(want {', '.join(EFFECTS)})")
    kv = key_value.split("=")
    if len(kv) > 2:
        raise ValueError(f"invalid taint spec: {text}")
    key, value = kv[0], kv[1] if len(kv) == 2 else ""
    problems = [*validation.is_qualified_name(key),
                *(validation.is_valid_label_value(value) if value else [])]
    if problems:
        raise ValueError(f"invalid taint spec: {text}, {'; '.join(problems)}")
    return {"key": key, "value": value, "effect": effect} if value else {"key": key,
                                                                         "effect": effect}


def parse_taints(text: str) -> list[Object]:
    """The --register-with-taints flag: comma-separated taints ("" is none); duplicates of one
    key and effect are an error, as the API would refuse them."""
    taints = [parse_taint(part.strip()) for part in text.split(",") if part.strip()]
    seen: set[tuple[str, str]] = set()
    for taint in taints:
        key = (taint["key"], taint["effect"])
        if key in seen:
            raise ValueError(f"duplicate taint {taint['key']}:{taint['effect']}")
        seen.add(key)
    return taints


@dataclass(frozen=True)
class NodeConfig:
    """What the node manager needs to know; defaults are the kubelet's."""

    node_name: str
    node_ip: str  # the InternalIP
    root_dir: Path  # the agent's state; its filesystem is ephemeral-storage (nodefs)
    cni_conf_dir: Path  # where containerd's CRI reads the conflist
    hostname: str = ""  # "" = node_name (the hostname label and Hostname address)
    pod_cidr: str = ""  # --pod-cidr: used until (unless) the Node's spec carries one
    cni_bin_dir: Path | None = None  # when set, Ready also requires the plugins there
    cni_bridge: str = "cni0"
    labels: Mapping[str, str] = field(default_factory=dict)  # --node-labels
    register_with_taints: Sequence[Mapping[str, str]] = ()  # set when the Node is created only
    cloud_provider: str = ""  # --cloud-provider: "" or "external" (a cloud-controller-manager)
    provided_node_ip: str = ""  # --node-ip when given: the address the cloud is asked to keep
    kubelet_port: int = 10250
    max_pods: int = 110
    clock: Callable[[], datetime] = _now
    status_update_frequency: float = 10.0  # seconds between status computations
    status_report_frequency: float = 300.0  # post at least this often even if unchanged
    runtime_check_interval: float = 2.0  # seconds between CRI Status checks (up or down?)
    lease_duration_seconds: int = 40
    lease_renew_interval: float = 10.0
    retry_interval: float = 1.0  # first retry after a failure; doubles up to the period
    eviction_hard: Mapping[str, str] = field(
        default_factory=lambda: dict(conditions.DEFAULT_EVICTION_HARD))
    pressure_transition_period: float = 300.0

    @property
    def host(self) -> str:
        return self.hostname or self.node_name

    @property
    def external_cloud_provider(self) -> bool:
        return self.cloud_provider == "external"


def registration_taints(config: NodeConfig) -> list[Object]:
    """The taints a new Node is created with: --register-with-taints, plus, with an external
    cloud provider, `node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule` (the
    cloud node controller removes it once it has initialised the node)."""
    taints = [dict(t) for t in config.register_with_taints]
    if config.external_cloud_provider and not any(
            t.get("key") == UNINITIALIZED_TAINT["key"] and t.get("effect") == "NoSchedule"
            for t in taints):
        taints.append(dict(UNINITIALIZED_TAINT))
    return taints
