"""The pod lifecycle event generator: which pods to sync because their containers changed.

containerd's own event stream (`/tasks/exit`, `/tasks/start`, `/tasks/oom`) tells within
milliseconds; a periodic relist of the runtime is the safety net that catches anything the
stream missed, as the kubelet's generic PLEG does.

Two details keep status prompt: containerd publishes `/tasks/exit` a few tens of milliseconds
before its CRI plugin marks the container exited, so an exit is passed on once the CRI says so
(polled briefly); and when containerd goes away and comes back (the stream breaks, or a relist
fails then succeeds) the stream is resubscribed within seconds, the runtime relisted and
`on_recovered` called, so pod workers that failed meanwhile sync again at once.
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
EXIT_TOPIC = "/tasks/exit"
RESUBSCRIBE_MAX = 2.0  # seconds: the longest wait before trying containerd's stream again
EXIT_WAIT = 2.0  # seconds an exit may take to show in the CRI before the pod syncs anyway


class PLEG:
    def __init__(self, runtime: Any, events: ContainerdClient, *,
                 on_change: Callable[[str], None], relist_period: float = 10.0,
                 on_recovered: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.events = events
        self.on_change = on_change  # called with a pod uid
        self.on_recovered = on_recovered  # called when containerd answers again after failing
        self.relist_period = relist_period
        self.healthy = True  # False from a failed stream or relist until a relist succeeds
        self._owner: dict[str, str] = {}  # container or sandbox id -> pod uid
        self._seen: dict[str, tuple[int, int]] = {}  # container id -> (state, created_at)
        self._exits: dict[str, asyncio.Task[None]] = {}  # container id -> its exit wait

    def __repr__(self) -> str:
        return f"<PLEG known={len(self._owner)} healthy={self.healthy}>"

    async def run(self) -> None:
        try:
            await asyncio.gather(self._watch(), self._relist_loop())
        finally:
            for task in self._exits.values():
                task.cancel()

    # -- the event stream ------------------------------------------------------------------------

    async def _watch(self) -> None:
        delay = 0.1
        while True:
            try:
                async for event in self.events.subscribe(TOPICS):
                    delay = 0.1
                    await self._event(event.topic, getattr(event.payload, "container_id", ""))
            except asyncio.CancelledError:
                raise
            except cri_errors.CRIError as exc:
                self._failed(f"containerd events: {exc}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUBSCRIBE_MAX)
            await self.safe_relist()  # catch up on whatever happened meanwhile

    async def _event(self, topic: str, cid: str) -> None:
        uid = self._owner.get(cid) or await self._lookup(cid)
        if not uid:
            return
        if topic == EXIT_TOPIC and cid not in self._exits:
            self._exits[cid] = asyncio.create_task(self._exited(cid, uid),
                                                   name=f"exit {cid[:12]}")
        elif topic != EXIT_TOPIC:
            self.on_change(uid)

    async def _exited(self, cid: str, uid: str) -> None:
        """Tell the pod's worker once the CRI reports the container as no longer running."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + EXIT_WAIT, 0.005
        try:
            while loop.time() < deadline:
                try:
                    status = await self.runtime.container_status(cid)
                except cri_errors.CRIError:
                    break  # a sandbox, or gone: nothing more to wait for
                if status.state != api.CONTAINER_RUNNING:
                    break
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.1)
            self.on_change(uid)
        finally:
            self._exits.pop(cid, None)

    async def _lookup(self, cid: str) -> str:
        try:
            found = dict((await self.runtime.container_status(cid)).labels)
        except cri_errors.CRIError:
            try:
                found = dict((await self.runtime.pod_sandbox_status(cid)).status.labels)
            except cri_errors.CRIError:
                return ""
        if found.get(labels.MANAGED_BY) != "true":
            return ""  # another client's container on the same containerd: not ours
        uid = str(found.get(labels.POD_UID, ""))
        if uid:
            self._owner[cid] = uid
        return uid

    # -- relisting -------------------------------------------------------------------------------

    def _failed(self, why: str) -> None:
        if self.healthy:
            log.warning("%s; the runtime is relisted once it answers again", why)
        self.healthy = False

    async def _relist_loop(self) -> None:
        while True:
            await asyncio.sleep(self.relist_period)
            await self.safe_relist()

    async def safe_relist(self) -> bool:
        """Relist, logging (not raising) a runtime failure; True when it succeeded."""
        was_healthy = self.healthy
        try:
            await self.relist()
            return True
        except cri_errors.CRIError as exc:
            if was_healthy:
                log.warning("relist failed: %s; relisting until the runtime answers", exc)
            return False

    async def relist(self) -> set[str]:
        """List the runtime; report pods whose containers changed; return every pod uid seen.

        After a failure, the first relist that succeeds reports every pod it saw and calls
        `on_recovered`: anything may have happened while containerd was unreachable.
        """
        managed = {labels.MANAGED_BY: "true"}
        try:
            sandboxes = await self.runtime.list_pod_sandbox(api.PodSandboxFilter(
                label_selector=managed))
            containers = await self.runtime.list_containers(api.ContainerFilter(
                label_selector=managed))
        except cri_errors.CRIError:
            self.healthy = False
            raise
        recovered, self.healthy = not self.healthy, True
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
            if self._seen.get(container.id) != seen[container.id] and not recovered:
                self.on_change(uid)
        for gone in set(self._seen) - set(seen):
            uid = self._owner.pop(gone, "")
            if uid and recovered:
                uids.add(uid)  # reported below with every other pod
            elif uid:
                self.on_change(uid)
        self._seen = seen
        if recovered:
            log.info("containerd answers again: resyncing %d pods", len(uids - {""}))
            for uid in uids - {""}:
                self.on_change(uid)
            if self.on_recovered is not None:
                self.on_recovered()
        return uids
