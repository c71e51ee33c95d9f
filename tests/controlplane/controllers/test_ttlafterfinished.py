"""TTL-after-finished controller: finished Jobs deleted `ttlSecondsAfterFinished` later."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from controlplane.client.rest import JOBS
from controlplane.controllers.testing import NOW, build, harness, stamp
from controlplane.controllers.ttlafterfinished import TTLAfterFinishedController, expires_at

Object = dict[str, Any]


def job(ttl: int | None = 10, *, finished: bool = True) -> Object:
    spec: Object = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    status: Object = {}
    if finished:
        status = {"completionTime": stamp(), "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp()}]}
    return {"kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "uid-pi"},
            "spec": spec, "status": status}


def test_expiry() -> None:
    assert expires_at(job()) == NOW + timedelta(seconds=10)
    assert expires_at(job(None)) is None
    assert expires_at(job(finished=False)) is None
    failed = job(0)
    failed["status"] = {"conditions": [{"type": "Failed", "status": "True",
                                        "lastTransitionTime": stamp(5)}]}
    assert expires_at(failed) == NOW + timedelta(seconds=5)


async def test_requeues_until_expired_then_deletes_in_the_background() -> None:
    h = harness()
    h.cache(JOBS, job())
    c = build(h, TTLAfterFinishedController)
    await c.sync("default/pi")
    assert h.client.actions() == []
    delay = c.queue._timers["default/pi"].when() - asyncio.get_running_loop().time()
    assert 9.5 < delay < 10.5
    h.clock[0] = NOW + timedelta(seconds=10)
    await c.sync("default/pi")
    assert h.client.actions(reads=True) == [("get", "jobs", "pi"), ("delete", "jobs", "pi")]


async def test_a_ttl_raised_meanwhile_is_read_from_the_api() -> None:
    h = harness()
    h.cache(JOBS, job(10))
    h.client.seed(JOBS, job(3600))
    c = build(h, TTLAfterFinishedController)
    h.clock[0] = NOW + timedelta(seconds=11)
    await c.sync("default/pi")
    assert h.client.actions() == []
