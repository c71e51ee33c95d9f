"""The pod lifecycle event generator: which pods to sync because their containers changed.

containerd's own event stream (`/tasks/exit`, `/tasks/start`, `/tasks/oom`) tells within
milliseconds; a periodic relist of the runtime is the safety net that catches anything the
stream missed (a reconnect, a restart of containerd), as the kubelet's generic PLEG does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from agent import labels
from cri import errors as cri_errors
from cri.containerd_client import ContainerdClient
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
TOPICS = ['topic=="/tasks/exit"', 'topic=="/tasks/start"', 'topic=="/tasks/oom"']


class PLEG:
    def __init__(self, runtime: Any, events: ContainerdClient, *,
                 on_change: Callable[[str], None], relist_period: float = 10.0) -> None:
        self.runtime = runtime
        self.events = events
        self.on_change = on_change  # called with a pod uid
        self.relist_period = relist_period
        self._owner: dict[str, str] = {}  # container or sandbox id -> pod uid
        self._seen: dict[str, tuple[int, int]] = {}  # container id -> (state, created_at)

    def __repr__(self) -> str:
        return f"<PLEG known={len(self._owner)}>"

    async def run(self) -> None:
        await asyncio.gather(self._watch(), self._relist_loop())

    async def _watch(self) -> None:
        delay = 0.2
        while True:
            try:
                async for event in self.events.subscribe(TOPICS):
                    delay = 0.2
                    cid = getattr(event.payload, "container_id", "")
                    uid = self._owner.get(cid) or await self._lookup(cid)
                    if uid:
                        self.on_change(uid)
            except asyncio.CancelledError:
                raise
            except cri_errors.CRIError as exc:
                log.warning("containerd events: %s; resubscribing in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            await self.relist()  # catch up on whatever happened meanwhile

    async def _lookup(self, cid: str) -> str:
        try:
            status = await self.runtime.container_status(cid)
            uid = str(status.labels.get(labels.POD_UID, ""))
        except cri_errors.CRIError:
            try:
                sandbox = await self.runtime.pod_sandbox_status(cid)
                uid = str(sandbox.status.labels.get(labels.POD_UID, ""))
            except cri_errors.CRIError:
                return ""
        if uid:
            self._owner[cid] = uid
        return uid

    async def _relist_loop(self) -> None:
        while True:
            await asyncio.sleep(self.relist_period)
            try:
                await self.relist()
            except cri_errors.CRIError as exc:
                log.warning("relist failed: %s", exc)

    async def relist(self) -> set[str]:
        """List the runtime; report pods whose containers changed; return every pod uid seen."""
        managed = {labels.MANAGED_BY: "true"}
        sandboxes = await self.runtime.list_pod_sandbox(api.PodSandboxFilter(
            label_selector=managed))
        containers = await self.runtime.list_containers(api.ContainerFilter(
            label_selector=managed))
        uids: set[str] = set()
        seen: dict[str, tuple[int, int]] = {}
        for sandbox in sandboxes:
            uid = sandbox.labels.get(labels.POD_UID, "")
            self._owner[sandbox.id] = uid
            uids.add(uid)
        for container in containers:
            uid = container.labels.get(labels.POD_UID, "")
            self._owner[container.id] = uid
            uids.add(uid)
            seen[container.id] = (container.state, container.created_at)
            if self._seen.get(container.id) != seen[container.id]:
                self.on_change(uid)
        for gone in set(self._seen) - set(seen):
            uid = self._owner.pop(gone, "")
            if uid:
                self.on_change(uid)
        self._seen = seen
        return uids
