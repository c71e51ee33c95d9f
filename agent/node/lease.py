"""The node's heartbeat: its Lease `kube-node-lease/<node>`, renewed every 10 s.

As the kubelet's lease controller: holderIdentity is the node name, leaseDurationSeconds 40,
renewTime a MicroTime, and an ownerReference to the Node (once the Node's uid is known) so the
lease goes when the node does. The last written lease is kept and updated in place; a Conflict
or NotFound drops it, and the next attempt reads (or creates) it afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from controlplane.api import errors
from controlplane.client.rest import LEASES, RESTClient

log = logging.getLogger(__name__)

Object = dict[str, Any]
NAMESPACE = "kube-node-lease"


def micro_time(t: datetime) -> str:
    """metav1.MicroTime on the wire."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeLease:
    """Renews one node's lease; `renew()` is one attempt. Used by one task at a time."""

    def __init__(self, client: RESTClient, *, node_name: str, duration_seconds: int,
                 clock: Callable[[], datetime], node_uid: Callable[[], str]) -> None:
        self.client = client
        self.node_name = node_name
        self.duration_seconds = duration_seconds
        self.clock = clock
        self.node_uid = node_uid  # "" while the Node is unknown
        self.lease: Object | None = None  # the lease as last read or written

    def __repr__(self) -> str:
        renewed = (self.lease or {}).get("spec", {}).get("renewTime", "never")
        return f"<NodeLease {NAMESPACE}/{self.node_name} renewed={renewed}>"

    async def renew(self) -> Object:
        """Write renewTime = now (creating the lease if needed); return the lease written.

        A Conflict (someone wrote it since) is retried once on a fresh read; other failures
        raise the APIError, and the next call starts over.
        """
        for attempt in range(2):
            if self.lease is None:
                try:
                    self.lease = await self.client.get(LEASES, self.node_name, NAMESPACE)
                except errors.NotFound:
                    self.lease = await self.client.create(LEASES, self._fresh(), NAMESPACE)
                    return self.lease
            try:
                self.lease = await self.client.update(LEASES, self._renewed(self.lease),
                                                      NAMESPACE)
                return self.lease
            except (errors.Conflict, errors.NotFound):
                self.lease = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _fresh(self) -> Object:
        lease: Object = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": self.node_name, "namespace": NAMESPACE},
                         "spec": {}}
        return self._renewed(lease)

    def _renewed(self, lease: Object) -> Object:
        lease = {**lease, "metadata": dict(lease.get("metadata") or {}),
                 "spec": dict(lease.get("spec") or {})}
        lease["spec"].update(holderIdentity=self.node_name,
                             leaseDurationSeconds=self.duration_seconds,
                             renewTime=micro_time(self.clock()))
        uid = self.node_uid()
        if uid and not lease["metadata"].get("ownerReferences"):
            lease["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": uid}]
        return lease
