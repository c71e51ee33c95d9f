"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

A candidate acquires the lease when it is free or expired (renewTime + leaseDurationSeconds in
the past), renews it every `retry_period` while leading, and steps down when it cannot renew
within `renew_deadline`. Writes are compare-and-swap on resourceVersion, so two candidates
never both lead. Defaults are Kubernetes' (15 s lease, 10 s renew deadline, 2 s retry).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.api import errors
from controlplane.client.rest import LEASES, RESTClient

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class LeaderElector:
    """Campaign for `namespace/name` as `identity`; run `lead()` while leading."""

    def __init__(self, client: RESTClient, *, name: str, identity: str,
                 namespace: str = "kube-system", lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], datetime] = _now,
                 on_standby: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.leading = False
        self.holder = ""  # who held the lease at the last attempt
        self.on_standby = on_standby  # called with the holder when another instance leads

    def __repr__(self) -> str:
        return (f"<LeaderElector {self.namespace}/{self.name} {self.identity} "
                f"leading={self.leading}>")

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the lease afterwards."""
        now = self.clock()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "renewTime": _micro(now),
        }
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except errors.NotFound:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = 0
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
            try:
                await self.client.create(LEASES, body, self.namespace)
                return True
            except errors.AlreadyExists:
                return False
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        self.holder = holder or ""
        renewed = _parse(current.get("renewTime"))
        duration = timedelta(seconds=current.get("leaseDurationSeconds") or self.lease_duration)
        if holder and holder != self.identity and renewed and renewed + duration > now:
            return False
        if holder == self.identity:
            spec["acquireTime"] = current.get("acquireTime") or _micro(now)
            spec["leaseTransitions"] = current.get("leaseTransitions") or 0
        else:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = (current.get("leaseTransitions") or 0) + 1
        lease["spec"] = spec
        try:
            await self.client.update(LEASES, lease, self.namespace)
            return True
        except (errors.Conflict, errors.NotFound):
            return False

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign forever; while leading, run `lead()` (cancelled when leadership is lost)."""
        while True:
            await self._acquire()
            log.info("lease %s/%s acquired by %s", self.namespace, self.name, self.identity)
            self.leading = True
            task = asyncio.create_task(lead())
            try:
                await self._renew_until_lost(task)
            finally:
                self.leading = False
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
            log.warning("lease %s/%s lost by %s", self.namespace, self.name, self.identity)

    async def _acquire(self) -> None:
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
                if self.on_standby is not None and self.holder:
                    self.on_standby(self.holder)
            except errors.APIError as exc:
                log.info("leader election: %s", exc)
            await asyncio.sleep(self.retry_period)

    async def _renew_until_lost(self, task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        last_renew = loop.time()
        while not task.done():
            await asyncio.sleep(self.retry_period)
            try:
                if await self.try_acquire_or_renew():
                    last_renew = loop.time()
                    continue
                return  # someone else holds it now
            except errors.APIError as exc:
                log.warning("leader election renew failed: %s", exc)
            if loop.time() - last_renew > self.renew_deadline:
                return
