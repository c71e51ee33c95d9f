"""Pods to CRI configs: the sandbox config of a pod and the container config of each container.

Pure translation (Kubernetes' kuberuntime_sandbox.go and kuberuntime_container.go): labels and
annotations that let the agent find everything again (agent/labels.py), DNS for the pod's
dnsPolicy, host port mappings, namespaces (hostNetwork/hostPID/hostIPC/shareProcessNamespace),
resources as cgroup values, and the container security context.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from agent import labels
from agent.config import AgentConfig
from controlplane.api import quantity
from cri.v1 import api_pb2 as api

Object = dict[str, Any]
CPU_PERIOD = 100_000  # microseconds, the kubelet's CFS period
MIN_SHARES = 2
PROTOCOLS = {"TCP": api.TCP, "UDP": api.UDP, "SCTP": api.SCTP}


def pod_labels(pod: Object) -> dict[str, str]:
    meta = pod["metadata"]
    return {**(meta.get("labels") or {}), labels.POD_NAME: meta["name"],
            labels.POD_NAMESPACE: meta.get("namespace", ""), labels.POD_UID: meta["uid"],
            labels.MANAGED_BY: "true"}


def namespace_options(spec: Object) -> api.NamespaceOption:
    return api.NamespaceOption(
        network=api.NODE if spec.get("hostNetwork") else api.POD,
        pid=api.NODE if spec.get("hostPID") else (
            api.POD if spec.get("shareProcessNamespace") else api.CONTAINER),
        ipc=api.NODE if spec.get("hostIPC") else api.POD,
    )


def dns_config(pod: Object, config: AgentConfig) -> api.DNSConfig | None:
    """The pod's resolv.conf, per dnsPolicy (None: the node's own, which containerd copies)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    custom = spec.get("dnsConfig") or {}
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    servers: list[str] = []
    searches: list[str] = []
    options = ["ndots:5"]
    if policy == "ClusterFirst" and config.cluster_dns:
        namespace = pod["metadata"].get("namespace", "default")
        domain = config.cluster_domain
        servers = list(config.cluster_dns)
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]
    elif policy == "None":
        options = []
    elif policy in ("Default", "ClusterFirst"):
        if not custom:
            return None
        options = []
    servers += [s for s in custom.get("nameservers") or [] if s not in servers]
    searches += [s for s in custom.get("searches") or [] if s not in searches]
    for option in custom.get("options") or []:
        name = option.get("name", "")
        text = f"{name}:{option['value']}" if option.get("value") else name
        options = [o for o in options if o.split(":")[0] != name] + [text]
    return api.DNSConfig(servers=servers, searches=searches[:32], options=options)


def sandbox_config(pod: Object, config: AgentConfig, attempt: int = 0) -> api.PodSandboxConfig:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    hostname = spec.get("hostname") or meta["name"]
    ports = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                ports.append(api.PortMapping(
                    protocol=PROTOCOLS.get(port.get("protocol", "TCP"), api.TCP),
                    container_port=int(port["containerPort"]), host_port=int(port["hostPort"]),
                    host_ip=port.get("hostIP", "")))
    security = spec.get("securityContext") or {}
    sandbox_security = api.LinuxSandboxSecurityContext(namespace_options=namespace_options(spec))
    if security.get("runAsUser") is not None:
        sandbox_security.run_as_user.value = int(security["runAsUser"])
    if security.get("runAsGroup") is not None:
        sandbox_security.run_as_group.value = int(security["runAsGroup"])
    sandbox_security.supplemental_groups.extend(
        int(g) for g in security.get("supplementalGroups") or [])
    sysctls = {s["name"]: str(s["value"]) for s in security.get("sysctls") or []}
    log_dir = labels.pod_log_dir(config.log_dir, meta.get("namespace", ""), meta["name"],
                                 meta["uid"])
    result = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=meta["name"], namespace=meta.get("namespace", ""),
                                        uid=meta["uid"], attempt=attempt),
        hostname=("" if spec.get("hostNetwork") else hostname[:63]),
        log_directory=str(log_dir), port_mappings=ports, labels=pod_labels(pod),
        annotations={k: str(v) for k, v in (meta.get("annotations") or {}).items()},
        linux=api.LinuxPodSandboxConfig(security_context=sandbox_security, sysctls=sysctls),
    )
    dns = dns_config(pod, config)
    if dns is not None:
        result.dns_config.CopyFrom(dns)
    return result


def container_hash(container: Object) -> str:
    """A stable hash of the container spec: a changed spec means a new container."""
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def linux_resources(container: Object) -> api.LinuxContainerResources:
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    cpu_request = requests.get("cpu", limits.get("cpu"))
    out = api.LinuxContainerResources(cpu_period=CPU_PERIOD)
    shares = MIN_SHARES
    if cpu_request is not None:
        shares = max(MIN_SHARES, quantity.milli_value(cpu_request) * 1024 // 1000)
    out.cpu_shares = shares
    if limits.get("cpu") is not None:
        out.cpu_quota = max(1000, quantity.milli_value(limits["cpu"]) * CPU_PERIOD // 1000)
    if limits.get("memory") is not None:
        out.memory_limit_in_bytes = quantity.value(limits["memory"])
    return out


def security_context(pod: Object, container: Object) -> api.LinuxContainerSecurityContext:
    spec = pod.get("spec") or {}
    pod_security = spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    out = api.LinuxContainerSecurityContext(namespace_options=namespace_options(spec))
    out.privileged = bool(own.get("privileged"))
    run_as_user = own.get("runAsUser", pod_security.get("runAsUser"))
    if run_as_user is not None:
        out.run_as_user.value = int(run_as_user)
    run_as_group = own.get("runAsGroup", pod_security.get("runAsGroup"))
    if run_as_group is not None:
        out.run_as_group.value = int(run_as_group)
    out.readonly_rootfs = bool(own.get("readOnlyRootFilesystem"))
    out.no_new_privs = own.get("allowPrivilegeEscalation") is False
    capabilities = own.get("capabilities") or {}
    out.capabilities.add_capabilities.extend(_caps(capabilities.get("add")))
    out.capabilities.drop_capabilities.extend(_caps(capabilities.get("drop")))
    out.supplemental_groups.extend(int(g) for g in pod_security.get("supplementalGroups") or [])
    return out


def _caps(names: Any) -> list[str]:
    return [n if str(n).startswith("CAP_") or n == "ALL" else f"CAP_{n}" for n in names or []]


def container_config(pod: Object, container: Object, *, restart_count: int,
                     env: list[tuple[str, str]], mounts: list[api.Mount],
                     init: bool = False) -> api.ContainerConfig:
    meta = pod["metadata"]
    name = container["name"]
    container_labels = {labels.POD_NAME: meta["name"],
                        labels.POD_NAMESPACE: meta.get("namespace", ""),
                        labels.POD_UID: meta["uid"], labels.CONTAINER_NAME: name,
                        labels.MANAGED_BY: "true"}
    annotations = {
        labels.RESTART_COUNT: str(restart_count),
        labels.CONTAINER_HASH: container_hash(container),
        labels.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath",
                                                       "/dev/termination-log"),
        labels.TERMINATION_GRACE: str((pod.get("spec") or {}).get(
            "terminationGracePeriodSeconds", 30)),
    }
    if init:
        annotations[labels.INIT_CONTAINER] = "true"
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=restart_count),
        image=api.ImageSpec(image=container["image"]),
        command=list(container.get("command") or []), args=list(container.get("args") or []),
        working_dir=container.get("workingDir", ""),
        envs=[api.KeyValue(key=k, value=v.encode()) for k, v in env],
        mounts=mounts, labels=container_labels, annotations=annotations,
        log_path=labels.container_log_path(name, restart_count),
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=api.LinuxContainerConfig(resources=linux_resources(container),
                                       security_context=security_context(pod, container)),
    )


def termination_message_file(pods_dir: Path, uid: str, container: str) -> Path:
    return pods_dir / uid / "containers" / container / "termination-log"
