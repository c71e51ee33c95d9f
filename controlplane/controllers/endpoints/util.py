"""Pod and Service helpers shared by the Endpoints and EndpointSlice controllers.

Which service a pod belongs to (a service's selector; none for ExternalName), whether a pod is
an endpoint at all (an IP, not terminal, not terminating unless asked), its port for a service
port (`find_port`: a named targetPort resolved in the pod's container ports, per pod), and the
last-change-trigger-time bookkeeping. All pure over cached objects; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from controlplane.api.meta import parse_time
from controlplane.controllers import pods as podutil
from controlplane.controllers.base import Lister

Object = dict[str, Any]
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS = "service.kubernetes.io/headless"


def selector_of(service: Object) -> dict[str, str] | None:
    """The service's selector, None when it has none (or is ExternalName): not ours to manage."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    selector = spec.get("selector")
    return dict(selector) if selector else None


def is_headless(service: Object) -> bool:
    return (service.get("spec") or {}).get("clusterIP") in ("None", "", None)


def pod_ips(pod: Object) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p["ip"]) for p in status.get("podIPs") or [] if p.get("ip")]
    return ips or ([str(status["podIP"])] if status.get("podIP") else [])


def should_be_in_endpoints(pod: Object, include_terminating: bool) -> bool:
    """Not terminal, has an IP, and not terminating unless `include_terminating`."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def should_set_hostname(pod: Object, service: Object) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == service["metadata"]["name"] \
        and pod["metadata"].get("namespace") == service["metadata"].get("namespace")


def find_port(pod: Object, service_port: Object) -> int | None:
    """The pod's port for a service port: a number as is, a name from its container ports."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def ip_family(service: Object, pod: Object) -> int:
    """The IP version a service's Endpoints carry (its first family, as Kubernetes)."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        return 6 if families[0] == "IPv6" else 4
    address = spec.get("clusterIP") if not is_headless(service) else (pod_ips(pod) or [""])[0]
    try:
        return ipaddress.ip_address(str(address)).version
    except ValueError:
        return 4


def selected_pods(pods: Lister, service: Object, selector: dict[str, str]) -> list[Object]:
    return [p for p in pods.list(service["metadata"]["namespace"])
            if podutil.labels_match(p["metadata"].get("labels") or {}, selector)]


def services_for_pod(services: Lister, pod: Object) -> set[str]:
    """Keys of the services in the pod's namespace whose selector matches it."""
    labels = pod["metadata"].get("labels") or {}
    namespace = pod["metadata"].get("namespace", "")
    return {f"{namespace}/{s['metadata']['name']}" for s in services.list(namespace)
            if (sel := selector_of(s)) is not None and podutil.labels_match(labels, sel)}


def endpoints_changed(old: Object, cur: Object) -> bool:
    """Whether a pod update can change its endpoint (readiness, IPs, deletion, phase, name)."""
    o_spec, c_spec = old.get("spec") or {}, cur.get("spec") or {}
    return (old["metadata"].get("deletionTimestamp") != cur["metadata"].get("deletionTimestamp")
            or podutil.is_ready(old) != podutil.is_ready(cur)
            or pod_ips(old) != pod_ips(cur)
            or (old.get("status") or {}).get("phase") != (cur.get("status") or {}).get("phase")
            or o_spec.get("nodeName") != c_spec.get("nodeName")
            or o_spec.get("hostname") != c_spec.get("hostname")
            or o_spec.get("subdomain") != c_spec.get("subdomain"))


def services_to_update(services: Lister, old: Object, cur: Object) -> set[str]:
    """Services a pod update concerns (Kubernetes' GetServicesToUpdateOnPodChange)."""
    if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
        return set()
    changed = endpoints_changed(old, cur)
    relabeled = old["metadata"].get("labels") != cur["metadata"].get("labels")
    if not changed and not relabeled:
        return set()
    keys = services_for_pod(services, cur)
    if relabeled:
        before = services_for_pod(services, old)
        keys = (keys | before) if changed else (keys ^ before)
    return keys


def format_time(t: datetime) -> str:
    """RFC3339Nano in UTC, as Go prints it (no trailing zeros in the fraction)."""
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


TriggerState = tuple[datetime | None, dict[str, datetime]]  # service time, pod times by name


class TriggerTimeTracker:
    """The last-change-trigger-time of each service (Kubernetes' TriggerTimeTracker).

    The trigger time is the earliest change since the previous sync: a pod's Ready transition or
    the service's creation; a service seen for the first time reports its creation time.
    """

    def __init__(self) -> None:
        # service key -> (service trigger time, pod name -> pod trigger time); one loop owns it
        self._states: dict[str, TriggerState] = {}

    def compute(self, key: str, service: Object, pods: Iterable[Object]
                ) -> tuple[datetime | None, TriggerState]:
        """The trigger time for a sync now, and the state to `save` once its write succeeded
        (so a failed write reports the same changes again on the retry)."""
        known = key in self._states
        last_service, last_pods = self._states.get(key, (None, {}))
        earliest: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            since = _time((podutil.ready_condition(pod) or {}).get("lastTransitionTime"))
            if since is None:
                continue
            name = pod["metadata"]["name"]
            pod_times[name] = since
            if name not in last_pods or since > last_pods[name]:
                earliest = since if earliest is None else min(earliest, since)
        created = _time(service["metadata"].get("creationTimestamp"))
        if created is not None and (last_service is None or created > last_service):
            earliest = created if earliest is None else min(earliest, created)
        return (created if not known else earliest), (created, pod_times)

    def save(self, key: str, state: TriggerState) -> None:
        self._states[key] = state

    def delete(self, key: str) -> None:
        self._states.pop(key, None)


def _time(value: Any) -> datetime | None:
    try:
        return parse_time(str(value)) if value else None
    except ValueError:
        return None


def ip_version(ip: str) -> int:
    """4 or 6 (0 for something that is not an IP address)."""
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return 0


def ip_sort_key(ip: str) -> tuple[int, int]:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return (0, 0)
    return (address.version, int(address))
