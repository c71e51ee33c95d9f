"""Printers for the core (v1) group other than pods and events.

Owns nodes, namespaces, services, endpoints, configmaps, secrets, serviceaccounts and
replicationcontrollers. Each printer always emits its wide cells too, as kube-apiserver does
(it prints with Wide: true and leaves it to kubectl to hide priority-1 columns). Where
kube-apiserver would see a defaulted object (service type, port protocol, replicas) a missing
field reads as its API default.
"""

from __future__ import annotations

from .common import (
    AGE,
    CONTAINERS,
    IMAGES,
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    age,
    dig,
    format_labels,
    items,
    list_with_more,
    mapping,
    name_of,
    number,
    selector_column,
    template_cells,
    text,
)

_ROLE_PREFIX = "node-role.kubernetes.io/"
_LEGACY_ROLE_LABEL = "kubernetes.io/role"


def _node_status(node: Obj) -> str:
    states = []
    ready = None
    for condition in items(dig(node, "status", "conditions")):
        if condition.get("type") == "Ready":
            ready = condition  # the last one wins, as in the printer's condition map
    if ready is not None:
        states.append("Ready" if ready.get("status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if dig(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(node: Obj) -> str:
    roles = set()
    for key, value in mapping(dig(node, "metadata", "labels")).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX):]:
            roles.add(key[len(_ROLE_PREFIX):])
        elif key == _LEGACY_ROLE_LABEL and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for address in items(dig(node, "status", "addresses")):
        if address.get("type") == kind:
            return text(address.get("address"))
    return "<none>"


def _node_cells(node: Obj, ctx: PrintContext) -> list[Cell]:
    info = mapping(dig(node, "status", "nodeInfo"))
    return [
        name_of(node),
        _node_status(node),
        _node_roles(node),
        age(node, ctx),
        text(info.get("kubeletVersion")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        text(info.get("osImage")) or "<unknown>",
        text(info.get("kernelVersion")) or "<unknown>",
        text(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


NODE = Printer(
    (
        NAME,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        AGE,
        Column("Version", description="Kubelet version reported by the node."),
        Column("Internal-IP", priority=1, description="The node's first InternalIP address."),
        Column("External-IP", priority=1, description="The node's first ExternalIP address."),
        Column("OS-Image", priority=1, description="OS image reported by the node."),
        Column("Kernel-Version", priority=1, description="Kernel version reported by the node."),
        Column("Container-Runtime", priority=1, description="Container runtime and version."),
    ),
    _node_cells,
)


def _load_balancer_ips(service: Obj) -> list[str]:
    found = set()
    for ingress in items(dig(service, "status", "loadBalancer", "ingress")):
        if address := text(ingress.get("ip")) or text(ingress.get("hostname")):
            found.add(address)
    return sorted(found)


def _external_ip(service: Obj) -> str:
    spec = mapping(service.get("spec"))
    kind = text(spec.get("type")) or "ClusterIP"
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        return ",".join(_load_balancer_ips(service) + external) or "<pending>"
    if kind == "ExternalName":
        return text(spec.get("externalName"))
    return "<unknown>"


def _service_ports(spec: Obj) -> str:
    pieces = []
    for port in items(spec.get("ports")):
        protocol = text(port.get("protocol")) or "TCP"
        node_port = number(port.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{number(port.get('port'))}:{node_port}/{protocol}")
        else:
            pieces.append(f"{number(port.get('port'))}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(service: Obj, ctx: PrintContext) -> list[Cell]:
    spec = mapping(service.get("spec"))
    cluster_ips = [str(ip) for ip in spec.get("clusterIPs") or []]
    cluster_ip = cluster_ips[0] if cluster_ips else text(spec.get("clusterIP"))
    return [
        name_of(service),
        text(spec.get("type")) or "ClusterIP",
        cluster_ip or "<none>",
        _external_ip(service),
        _service_ports(spec),
        age(service, ctx),
        format_labels(spec.get("selector")),
    ]


SERVICE = Printer(
    (
        NAME,
        Column("Type", description="How the service is exposed."),
        Column("Cluster-IP", description="The service's cluster IP."),
        Column("External-IP", description="External addresses the service is reachable on."),
        Column("Port(s)", description="The ports the service exposes."),
        AGE,
        selector_column("Pods matching this selector receive the service's traffic."),
    ),
    _service_cells,
)


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(endpoints: Obj) -> str:
    """Render ready endpoint addresses as "ip:port,..." with the "+ N more..." tail."""
    subsets = items(endpoints.get("subsets"))
    if not subsets:
        return "<none>"
    entries: list[str] = []
    for subset in subsets:
        ips = [text(a.get("ip")) for a in items(subset.get("addresses"))]
        ports = items(subset.get("ports"))
        if not ports:
            entries.extend(ips)
        for port in ports:
            entries.extend(_host_port(ip, number(port.get("port"))) for ip in ips)
    return list_with_more(entries, empty="")


def _endpoints_cells(endpoints: Obj, ctx: PrintContext) -> list[Cell]:
    return [name_of(endpoints), format_endpoints(endpoints), age(endpoints, ctx)]


ENDPOINTS = Printer(
    (NAME, Column("Endpoints", description="Ready addresses and ports."), AGE),
    _endpoints_cells,
)


def _namespace_cells(namespace: Obj, ctx: PrintContext) -> list[Cell]:
    return [name_of(namespace), text(dig(namespace, "status", "phase")), age(namespace, ctx)]


def _configmap_cells(configmap: Obj, ctx: PrintContext) -> list[Cell]:
    count = len(mapping(configmap.get("data"))) + len(mapping(configmap.get("binaryData")))
    return [name_of(configmap), count, age(configmap, ctx)]


def _secret_cells(secret: Obj, ctx: PrintContext) -> list[Cell]:
    # Stored secrets have stringData folded into data; count both in case it was not.
    keys = set(mapping(secret.get("data"))) | set(mapping(secret.get("stringData")))
    return [name_of(secret), text(secret.get("type")) or "Opaque", len(keys), age(secret, ctx)]


def _serviceaccount_cells(account: Obj, ctx: PrintContext) -> list[Cell]:
    return [name_of(account), len(items(account.get("secrets"))), age(account, ctx)]


def _replicationcontroller_cells(rc: Obj, ctx: PrintContext) -> list[Cell]:
    names, images = template_cells(rc)
    return [
        name_of(rc),
        number(dig(rc, "spec", "replicas"), 1),
        number(dig(rc, "status", "replicas")),
        number(dig(rc, "status", "readyReplicas")),
        age(rc, ctx),
        names,
        images,
        format_labels(dig(rc, "spec", "selector")),
    ]


PRINTERS = {
    ("", "nodes"): NODE,
    ("", "services"): SERVICE,
    ("", "endpoints"): ENDPOINTS,
    ("", "namespaces"): Printer(
        (NAME, Column("Status", description="The status of the namespace"), AGE),
        _namespace_cells,
    ),
    ("", "configmaps"): Printer(
        (NAME, Column("Data", description="Number of data and binaryData keys."), AGE),
        _configmap_cells,
    ),
    ("", "secrets"): Printer(
        (
            NAME,
            Column("Type", description="Used to facilitate programmatic handling of secret data."),
            Column("Data", description="Number of data keys."),
            AGE,
        ),
        _secret_cells,
    ),
    ("", "serviceaccounts"): Printer(
        (NAME, Column("Secrets", description="Number of secrets listed."), AGE),
        _serviceaccount_cells,
    ),
    ("", "replicationcontrollers"): Printer(
        (
            NAME,
            Column("Desired", "integer", description="Number of desired pods."),
            Column("Current", "integer", description="Number of most recently observed pods."),
            Column("Ready", "integer", description="Number of ready pods."),
            AGE,
            CONTAINERS,
            IMAGES,
            selector_column(),
        ),
        _replicationcontroller_cells,
    ),
}
