"""The Node object and its status as this agent reports them, built from measurements. Pure.

`RuntimeState` is the kubelet's runtimeState: what the last CRI Status said about the runtime and
its network, and when the runtime was last seen ready (two minutes without that and the node
reads "container runtime is down"). Unlike the kubelet, a runtime that cannot be reached at all
(its socket gone or refusing connections) is down at once, with the cause: the node turns
NotReady within seconds of containerd stopping instead of two minutes later. The rest turns a
sample, the runtime's answers and the config into the Node's labels, addresses,
capacity/allocatable (allocatable = capacity minus the hard eviction reservation for memory and
ephemeral-storage, as the kubelet subtracts it), nodeInfo, images (biggest first, at most 50,
five names each) and the strategic merge patch that posts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.node.conditions import CONDITION_TYPES, threshold_value, without_heartbeats
from agent.node.machine import Sample, SystemInfo
from cri.v1 import api_pb2 as api

Object = dict[str, Any]

KUBELET_VERSION = "v1.32.4-pinnace"
MAX_IMAGES = 50  # the kubelet's nodeStatusMaxImages
MAX_NAMES_PER_IMAGE = 5
RUNTIME_SYNC_THRESHOLD = timedelta(minutes=2)  # the kubelet's baseRuntimeSyncThreshold
STATUS_FIELDS = ("addresses", "capacity", "allocatable", "conditions", "daemonEndpoints",
                 "nodeInfo", "images")


def _go_condition(condition: api.RuntimeCondition | None) -> str:
    """A CRI condition as the kubelet prints it in NodeReady's message."""
    if condition is None:
        return "<nil>"
    status = "true" if condition.status else "false"
    return f"{condition.type}={status} reason:{condition.reason} message:{condition.message}"


@dataclass
class RuntimeState:
    """What the runtime last told us; owned by the status task."""

    last_ready: datetime | None = None  # last CRI Status with RuntimeReady=true
    runtime_error: str = ""
    network_error: str = ""
    runtime_version: str = ""  # "containerd://1.6.20~ds1" once CRI Version answered
    unreachable: str = ""  # why the last CRI Status call could not reach the runtime at all

    def observe_unreachable(self, why: str) -> None:
        """The runtime could not be reached (no socket, connection refused)."""
        self.unreachable = why or "unreachable"

    def observe(self, now: datetime, status: api.StatusResponse) -> None:
        """Take in one CRI Status answer (the kubelet's updateRuntimeUp)."""
        self.unreachable = ""
        found = {c.type: c for c in status.status.conditions}
        network = found.get("NetworkReady")
        self.network_error = ("" if network is not None and network.status else
                              f"container runtime network not ready: {_go_condition(network)}")
        runtime = found.get("RuntimeReady")
        if runtime is None or not runtime.status:
            self.runtime_error = f"container runtime not ready: {_go_condition(runtime)}"
            return
        self.runtime_error = ""
        self.last_ready = now

    def errors(self, now: datetime) -> list[str]:
        """The runtime and network errors that keep the node from Ready, in the kubelet's order."""
        out = []
        if self.unreachable:
            out.append(f"container runtime is down: {self.unreachable}")
        elif self.last_ready is None:
            out.append("container runtime status check may not have completed yet")
        elif self.last_ready + RUNTIME_SYNC_THRESHOLD <= now:
            out.append("container runtime is down")
        out += [e for e in (self.runtime_error, self.network_error) if e]
        return out


_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def format_bytes(n: int) -> str:
    """A byte count as resource.Quantity prints a BinarySI value ("8148004Ki", "93492209510")."""
    if -1024 < n < 1024:
        return str(n)
    exponent = 0
    while n and n % 1024 == 0 and exponent < len(_BINARY_SUFFIXES) - 1:
        n //= 1024
        exponent += 1
    return f"{n}{_BINARY_SUFFIXES[exponent]}"


def capacity(sample: Sample, max_pods: int) -> dict[str, str]:
    out = {"cpu": str(sample.cpus), "memory": format_bytes(sample.memory_total),
           "pods": str(max_pods)}
    if sample.nodefs is not None:
        out["ephemeral-storage"] = format_bytes(sample.nodefs.capacity_bytes)
    return out


def allocatable(sample: Sample, max_pods: int, eviction_hard: Mapping[str, str]) -> dict[str, str]:
    """Capacity less the hard eviction reservation (memory.available, nodefs.available)."""
    out = capacity(sample, max_pods)
    memory_reserve = eviction_hard.get("memory.available")
    if memory_reserve:
        reserved = threshold_value(memory_reserve, sample.memory_total)
        out["memory"] = format_bytes(max(sample.memory_total - reserved, 0))
    disk_reserve = eviction_hard.get("nodefs.available")
    if disk_reserve and sample.nodefs is not None:
        total = sample.nodefs.capacity_bytes
        out["ephemeral-storage"] = format_bytes(max(total - threshold_value(disk_reserve, total),
                                                    0))
    return out


def node_images(images: Iterable[api.Image]) -> list[Object]:
    """status.images: biggest first, at most 50, each with up to five names (digests first)."""
    ordered = sorted(images, key=lambda i: i.size, reverse=True)[:MAX_IMAGES]
    return [{"names": [*i.repo_digests, *i.repo_tags][:MAX_NAMES_PER_IMAGE],
             "sizeBytes": int(i.size)} for i in ordered]


def node_info(info: SystemInfo, runtime_version: str) -> dict[str, str]:
    return {
        "machineID": info.machine_id, "systemUUID": info.system_uuid, "bootID": info.boot_id,
        "kernelVersion": info.kernel_version, "osImage": info.os_image,
        "containerRuntimeVersion": runtime_version, "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": info.architecture,
    }


def default_labels(hostname: str, arch: str) -> dict[str, str]:
    """The labels every kubelet keeps on its Node."""
    return {"kubernetes.io/hostname": hostname, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch}


def addresses(node_ip: str, hostname: str) -> list[Object]:
    out = [{"type": "InternalIP", "address": node_ip}] if node_ip else []
    return [*out, {"type": "Hostname", "address": hostname}]


def reported_addresses(node_ip: str, hostname: str, current: Sequence[Mapping[str, Any]], *,
                       external_cloud: bool, node_ip_given: bool) -> list[Object]:
    """status.addresses to report: ours, except that with an external cloud provider any the
    Node already has win (the cloud-controller-manager writes them), and without --node-ip
    none are set before the cloud's (the kubelet's NodeAddress setter)."""
    if external_cloud:
        if current:
            return [dict(a) for a in current]
        if not node_ip_given:
            return []
    return addresses(node_ip, hostname)


def ours(status: Mapping[str, Any]) -> Object:
    """The part of a Node's status this agent owns, comparable with what it computes."""
    out: Object = {k: status.get(k) for k in STATUS_FIELDS}
    out["conditions"] = without_heartbeats(
        c for c in status.get("conditions") or [] if c.get("type") in CONDITION_TYPES)
    out["images"] = status.get("images") or []
    return out


def status_changed(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether posting `desired` would change more than heartbeats (kubelet's
    nodeStatusHasChanged, restricted to the fields we own)."""
    return ours(current) != ours(desired)


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """The strategic merge patch of /status that makes `current` carry `desired`.

    Conditions and addresses merge by type, so conditions others own (NetworkUnavailable, ...)
    stay; address types we no longer report are deleted. images is replaced whole.
    """
    status: Object = {k: desired[k] for k in STATUS_FIELDS if k in desired}
    reported = {a.get("type") for a in desired.get("addresses") or []}
    stale = sorted({str(a.get("type")) for a in current.get("addresses") or []
                    if a.get("type") not in reported})
    if stale:
        status["addresses"] = [*status.get("addresses", []),
                               *({"type": t, "$patch": "delete"} for t in stale)]
    return {"status": status}


def pod_cidr_of(node: Mapping[str, Any]) -> str:
    spec = node.get("spec") or {}
    cidrs: Sequence[str] = spec.get("podCIDRs") or []
    return str(spec.get("podCIDR") or (cidrs[0] if cidrs else ""))
