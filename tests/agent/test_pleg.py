"""Unit tests of the PLEG over the fake CRI: an exit is passed on once the CRI reports it (not at
containerd's earlier event), and a containerd that goes away and comes back is resubscribed,
relisted and every pod reported again, without the PLEG ever dying."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from agent import labels
from agent.pleg import PLEG
from cri import errors as cri_errors
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

IMAGES = ["localhost/pause:1", "localhost/busybox:1"]


def gone(method: str) -> cri_errors.Unavailable:
    return cri_errors.Unavailable("fake", method, grpc.StatusCode.UNAVAILABLE,
                                  "connection refused")


async def start_pod(rt: FakeRuntime, uid: str, container: str = "main") -> str:
    pod_labels = {labels.POD_UID: uid, labels.MANAGED_BY: "true"}
    config = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=uid, uid=uid,
                                                                  namespace="ns"),
                                  labels=pod_labels)
    sandbox = await rt.run_pod_sandbox(config)
    cid = await rt.create_container(sandbox, api.ContainerConfig(
        metadata=api.ContainerMetadata(name=container),
        image=api.ImageSpec(image="localhost/busybox:1"),
        labels={**pod_labels, labels.CONTAINER_NAME: container}), config)
    await rt.start_container(cid)
    return cid


class Recorder:
    def __init__(self, rt: FakeRuntime) -> None:
        self.rt = rt
        self.changes: list[str] = []
        self.recoveries = 0

    def on_change(self, uid: str) -> None:
        self.changes.append(uid)

    def on_recovered(self) -> None:
        self.recoveries += 1


async def until(check: Any, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_an_exit_is_passed_on_once_the_cri_reports_it() -> None:
    rt = FakeRuntime(images=IMAGES)
    cid = await start_pod(rt, "u1")
    rec = Recorder(rt)
    pleg = PLEG(rt, rt, on_change=rec.on_change, relist_period=3600)  # type: ignore[arg-type]
    await pleg.relist()
    rec.changes.clear()
    # containerd publishes /tasks/exit before its CRI plugin marks the container exited: the
    # first status calls after the event still say RUNNING.
    real_status, lagging = rt.container_status, [3]
    exited_at_change: list[int] = []

    async def container_status(container_id: str, **kwargs: Any) -> api.ContainerStatus:
        status = await real_status(container_id, **kwargs)
        if container_id == cid and lagging[0] > 0 and status.state == api.CONTAINER_EXITED:
            lagging[0] -= 1
            status.state = api.CONTAINER_RUNNING
        return status

    def on_change(uid: str) -> None:
        rec.changes.append(uid)
        exited_at_change.append(lagging[0])

    rt.container_status = container_status  # type: ignore[method-assign]
    pleg.on_change = on_change
    task = asyncio.create_task(pleg.run())
    try:
        await until(lambda: rt.called("subscribe"))
        rt.exit_container(cid, 3)
        await until(lambda: rec.changes)
        assert rec.changes == ["u1"]
        assert exited_at_change == [0]  # only after the CRI stopped saying RUNNING
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_containerd_going_away_and_back_resubscribes_and_resyncs_every_pod() -> None:
    rt = FakeRuntime(images=IMAGES)
    first = await start_pod(rt, "u1")
    await start_pod(rt, "u2")
    rec = Recorder(rt)
    pleg = PLEG(rt, rt, on_change=rec.on_change, relist_period=0.05,  # type: ignore[arg-type]
                on_recovered=rec.on_recovered)
    await pleg.relist()
    task = asyncio.create_task(pleg.run())
    try:
        await until(lambda: len(rt.called("subscribe")) == 1)
        rec.changes.clear()
        # containerd stops: the stream breaks, relists and resubscriptions fail until it is back.
        down = True
        real_list, real_subscribe = rt.list_pod_sandbox, rt.subscribe

        async def list_pod_sandbox(*args: Any, **kwargs: Any) -> Any:
            if down:
                raise gone("ListPodSandbox")
            return await real_list(*args, **kwargs)

        def subscribe(filters: Any = ()) -> Any:
            if down:
                raise gone("Subscribe")
            return real_subscribe(filters)

        rt.list_pod_sandbox = list_pod_sandbox  # type: ignore[method-assign]
        rt.subscribe = subscribe  # type: ignore[method-assign]
        rt.break_subscriptions()
        await until(lambda: not pleg.healthy)
        await asyncio.sleep(0.3)  # several failed relists and resubscriptions
        assert rec.recoveries == 0 and not rec.changes and not task.done()
        down = False
        await until(lambda: rec.recoveries == 1)
        assert pleg.healthy
        assert set(rec.changes) == {"u1", "u2"}  # every pod, changed or not
        # The new stream delivers exits again.
        await until(lambda: bool(rt._subscriptions))
        rec.changes.clear()
        pleg.relist_period = 3600  # only the event can report it now
        rt.exit_container(first, 1)
        await until(lambda: "u1" in rec.changes)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_failed_relist_is_logged_not_raised() -> None:
    rt = FakeRuntime(images=IMAGES)
    rec = Recorder(rt)
    pleg = PLEG(rt, rt, on_change=rec.on_change)  # type: ignore[arg-type]
    rt.fail_next("list_containers", gone("ListContainers"))
    assert await pleg.safe_relist() is False
    assert not pleg.healthy
    with pytest.raises(cri_errors.Unavailable):
        rt.fail_next("list_pod_sandbox", gone("ListPodSandbox"))
        await pleg.relist()
    await start_pod(rt, "u3")
    assert await pleg.safe_relist() is True
    assert pleg.healthy and rec.changes == ["u3"]
