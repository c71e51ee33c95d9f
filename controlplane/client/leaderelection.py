"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

A candidate acquires the lease when it is free or expired (renewTime + leaseDurationSeconds in
the past), renews it every `retry_period` while leading, and steps down when it cannot renew
within `renew_deadline`. Writes are compare-and-swap on resourceVersion, so two candidates
never both lead. Defaults are Kubernetes' (15 s lease, 10 s renew deadline, 2 s retry).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.api import errors
from controlplane.api.sdnotify import Readiness
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

    async def release(self) -> None:
        """Give the lease up if we hold it (client-go's ReleaseOnCancel): a standby leads at
        once instead of waiting for the lease to expire."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = _micro(self.clock())
            lease["spec"] = dict(spec, holderIdentity=None, leaseDurationSeconds=1,
                                 renewTime=now, acquireTime=now)
            await self.client.update(LEASES, lease, self.namespace)
            log.info("lease %s/%s released", self.namespace, self.name)
        except errors.APIError as exc:
            log.info("could not release lease %s/%s: %s", self.namespace, self.name, exc)

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


async def run_elected(daemon: str, elector: LeaderElector | None,
                      lead: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
    """A leader-elected daemon's life: campaign (no `elector`: lead at once) and run
    `lead(on_synced)` while leading, until SIGTERM/SIGINT; then release the lease.

    systemd hears READY=1 once the leader calls `on_synced` (its caches are synced), or once
    another instance is seen holding the lease (a standby is ready too), and STOPPING=1 at the
    end. A failure of `lead` outside leader election is raised.
    """
    readiness = Readiness(daemon)

    async def leading() -> None:
        await lead(lambda: readiness.ready("leading; caches synced"))

    if elector is not None:
        elector.on_standby = lambda holder: readiness.ready(f"standby; {holder} leads")
        log.info("campaigning for lease %s/%s as %s", elector.namespace, elector.name,
                 elector.identity)
    work = asyncio.create_task(elector.run(leading) if elector else leading())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping")
        readiness.stopping()
    finally:
        for task in (work, stopper):
            task.cancel()
        results = await asyncio.gather(work, stopper, return_exceptions=True)
        if elector is not None:
            await elector.release()
    failure = results[0]
    if isinstance(failure, Exception):
        raise failure
