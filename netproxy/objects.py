"""What netproxy keeps of the API objects it watches: the fields its readers use, and no more.

The daemon runs one informer per resource (Services, EndpointSlices, Nodes) for all of its
readers: the proxier's change trackers (netproxy.model), the cluster DNS (netproxy.dns.records),
the health servers (netproxy.healthcheck) and the pod routes (netproxy.routes). Those caches are
the one copy of the objects the process holds, so their informers store them through these
transforms (`Informer(transform=...)`; each slims the object it is given, in place):
- every object keeps metadata's namespace, name, resourceVersion (the informer compares it on a
  relist), labels (kubernetes.io/service-name) and deletionTimestamp; managedFields,
  annotations (kubectl's last-applied-configuration is a whole copy), uid, timestamps go;
- a Service keeps its spec and status (status.loadBalancer.ingress);
- an EndpointSlice keeps addressType, ports and its endpoints without targetRef;
- a Node keeps its spec (podCIDR) and status.addresses (not images, conditions, nodeInfo).
Short string values are interned, so the ones every object repeats ("TCP", "IPv4",
"ClusterIP", namespaces, port names) are shared.
A reader that starts using another field adds it here. Anything that is not a JSON object where
one is expected is passed through unchanged, for the readers to reject it as they always did.
"""

from __future__ import annotations

import sys
from typing import Any

Object = dict[str, Any]
METADATA = frozenset(("namespace", "name", "resourceVersion", "labels", "deletionTimestamp"))
SERVICE = frozenset(("metadata", "spec", "status"))
ENDPOINT_SLICE = frozenset(("metadata", "addressType", "ports", "endpoints"))
NODE = frozenset(("metadata", "spec", "status"))
NODE_STATUS = frozenset(("addresses",))
INTERN_LENGTH = 64  # longer strings (certificates, messages) are rarely repeated


def intern_values(value: Any) -> Any:
    """Intern the short strings of a JSON value, in place (keys stay: the parser shares them
    across one response already); return the value, or the interned string."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = intern_values(item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = intern_values(item)
    elif isinstance(value, str) and len(value) <= INTERN_LENGTH:
        return sys.intern(value)
    return value


def _keep(obj: Object, fields: frozenset[str]) -> None:
    for name in [name for name in obj if name not in fields]:
        del obj[name]


def _slim(obj: Object, fields: frozenset[str]) -> None:
    """Drop the top-level fields not in `fields` and metadata's not in METADATA, in place."""
    _keep(obj, fields)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        _keep(meta, METADATA)


def service(obj: Object) -> Object:
    """A Service as netproxy keeps it (in place): metadata (above), spec, status."""
    if isinstance(obj, dict):
        _slim(obj, SERVICE)
    return intern_values(obj)  # type: ignore[no-any-return]


def endpoint_slice(obj: Object) -> Object:
    """An EndpointSlice as netproxy keeps it (in place): metadata, addressType, ports and
    endpoints without targetRef."""
    if isinstance(obj, dict):
        _slim(obj, ENDPOINT_SLICE)
        for endpoint in obj.get("endpoints") or ():
            if isinstance(endpoint, dict):
                endpoint.pop("targetRef", None)
    return intern_values(obj)  # type: ignore[no-any-return]


def node(obj: Object) -> Object:
    """A Node as netproxy keeps it (in place): metadata, spec, status.addresses."""
    if isinstance(obj, dict):
        _slim(obj, NODE)
        if isinstance(obj.get("status"), dict):
            _keep(obj["status"], NODE_STATUS)
    return intern_values(obj)  # type: ignore[no-any-return]
