"""What the garbage collector watches, and how an ownerReference's kind becomes a resource.

`MONITORED` lists every resource the apiserver serves that can own or be owned (each stored
form once: events.k8s.io/v1 events and autoscaling/v1 HPAs are other views of core events and
autoscaling/v2 HPAs). The informers are made from it when the controller is built, before they
start. `RESTMapper` maps (group, kind) to (resource, namespaced): from that table first, then
from discovery for a kind the table lacks, remembering what it learnt; a kind nobody serves is
a `MappingError` (retried with back-off, as Kubernetes does: the kind may appear later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from controlplane.api import errors
from controlplane.client.rest import (
    CONFIGMAPS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTS,
    ENDPOINTSLICES,
    EVENTS,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    Resource,
)
from controlplane.controllers.base import SyncError
from controlplane.controllers.namespace.discovery import DiscoveryClient, resources_of

log = logging.getLogger(__name__)
Object = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Kind:
    """A monitored resource with its kind and scope."""

    resource: Resource
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        r = self.resource
        return f"{r.group}/{r.version}" if r.group else r.version


MONITORED: tuple[Kind, ...] = (
    Kind(PODS, "Pod"), Kind(SERVICES, "Service"), Kind(ENDPOINTS, "Endpoints"),
    Kind(CONFIGMAPS, "ConfigMap"), Kind(SECRETS, "Secret"),
    Kind(Resource("", "v1", "serviceaccounts"), "ServiceAccount"), Kind(EVENTS, "Event"),
    Kind(Resource("apps", "v1", "controllerrevisions"), "ControllerRevision"),
    Kind(NODES, "Node", False), Kind(NAMESPACES, "Namespace", False),
    Kind(DEPLOYMENTS, "Deployment"), Kind(REPLICASETS, "ReplicaSet"),
    Kind(DAEMONSETS, "DaemonSet"), Kind(JOBS, "Job"), Kind(CRONJOBS, "CronJob"),
    Kind(LEASES, "Lease"), Kind(ENDPOINTSLICES, "EndpointSlice"),
    Kind(Resource("autoscaling", "v2", "horizontalpodautoscalers"), "HorizontalPodAutoscaler"),
    Kind(Resource(RBAC, "v1", "roles"), "Role"),
    Kind(Resource(RBAC, "v1", "rolebindings"), "RoleBinding"),
    Kind(Resource(RBAC, "v1", "clusterroles"), "ClusterRole", False),
    Kind(Resource(RBAC, "v1", "clusterrolebindings"), "ClusterRoleBinding", False),
)


class MappingError(SyncError):
    """No served resource has this kind (yet)."""


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class RESTMapper:
    """(group, kind) -> Kind, from `MONITORED` and then from discovery."""

    def __init__(self, client: object, known: tuple[Kind, ...] = MONITORED) -> None:
        self.client = client
        self._kinds = {(k.resource.group, k.kind): k for k in known}

    def __repr__(self) -> str:
        return f"<RESTMapper kinds={len(self._kinds)}>"

    def known(self, api_version: str, kind: str) -> Kind | None:
        """The mapping without asking the server (None when it would have to)."""
        return self._kinds.get((group_of(api_version), kind))

    async def kind_for(self, api_version: str, kind: str) -> Kind:
        found = self.known(api_version, kind)
        if found is not None:
            return found
        if not callable(getattr(self.client, "request", None)):
            raise MappingError(f"no mapping for {api_version}, Kind={kind}")
        try:
            served = await resources_of(cast(DiscoveryClient, self.client), api_version)
        except errors.APIError as exc:
            raise MappingError(f"no mapping for {api_version}, Kind={kind}: {exc}") from None
        for res in served:
            if res.kind == kind:
                mapped = Kind(res.resource, kind, res.namespaced)
                self._kinds[(res.resource.group, kind)] = mapped
                log.info("garbage collector: %s %s is served as %s", api_version, kind,
                         res.resource.resource)
                return mapped
        raise MappingError(f"no matches for kind {kind!r} in version {api_version!r}")
