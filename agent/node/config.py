"""The node manager's configuration: one frozen dataclass, the kubelet's defaults in one place.

The agent's main fills it from its flags (`--node-name`, `--node-ip`, `--pod-cidr`,
`--node-labels`, `--register-with-taints`, ...); tests shorten the periods and pass a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.node import conditions

Object = dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def parse_taint(text: str) -> Object:
    """A --register-with-taints entry, "key=value:Effect" or "key:Effect", as a Taint."""
    key_value, sep, effect = text.rpartition(":")
    if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ValueError(f"invalid taint {text!r}: want key[=value]:NoSchedule|"
                         "PreferNoSchedule|NoExecute")
    key, _, value = key_value.partition("=")
    return {"key": key, "value": value, "effect": effect} if value else {"key": key,
                                                                         "effect": effect}


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
    register_with_taints: Sequence[Mapping[str, str]] = ()
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
