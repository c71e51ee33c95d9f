"""The PLEG over the fake CRI: adoption by labels (relist), changes reported per pod uid, and
exits seen through the event stream, also after containerd's stream breaks."""

from __future__ import annotations

import asyncio

from agent import labels
from agent.pleg import PLEG
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api


async def start_pod(runtime: FakeRuntime, uid: str, *, managed: bool = True,
                    containers: int = 1) -> list[str]:
    pod_labels = {labels.POD_UID: uid, **({labels.MANAGED_BY: "true"} if managed else {})}
    config = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name=uid, namespace="d",
                                                                  uid=uid), labels=pod_labels)
    sandbox = await runtime.run_pod_sandbox(config)
    ids = []
    for i in range(containers):
        cid = await runtime.create_container(sandbox, api.ContainerConfig(
            metadata=api.ContainerMetadata(name=f"c{i}"),
            image=api.ImageSpec(image="localhost/busybox:1"),
            labels={**pod_labels, labels.CONTAINER_NAME: f"c{i}"}), config)
        await runtime.start_container(cid)
        ids.append(cid)
    return ids


def make() -> tuple[FakeRuntime, PLEG, list[str]]:
    runtime = FakeRuntime(images=["localhost/pause:1", "localhost/busybox:1"])
    changed: list[str] = []
    pleg = PLEG(runtime, runtime, on_change=changed.append,  # type: ignore[arg-type]
                relist_period=3600)
    return runtime, pleg, changed


async def test_relist_adopts_every_managed_pod_by_its_labels() -> None:
    runtime, pleg, changed = make()
    await start_pod(runtime, "a", containers=2)
    await start_pod(runtime, "b", containers=0)  # a sandbox only: still a pod to sync
    await start_pod(runtime, "foreign", managed=False)  # not ours: left alone
    assert await pleg.relist() == {"a", "b"}
    assert sorted(set(changed)) == ["a"]


async def test_relist_reports_only_pods_whose_containers_changed() -> None:
    runtime, pleg, changed = make()
    a = await start_pod(runtime, "a")
    await start_pod(runtime, "b")
    await pleg.relist()
    changed.clear()
    await pleg.relist()
    assert changed == []
    runtime.exit_container(a[0], 1)
    await pleg.relist()
    assert changed == ["a"]
    changed.clear()
    await runtime.remove_container(a[0])
    await pleg.relist()
    assert changed == ["a"]  # a container that vanished is a change too


async def test_exits_arrive_through_the_event_stream_and_after_it_breaks() -> None:
    runtime, pleg, changed = make()
    a = await start_pod(runtime, "a", containers=2)
    await pleg.relist()
    changed.clear()
    task = asyncio.create_task(pleg.run())
    try:
        await asyncio.sleep(0.01)
        runtime.exit_container(a[0], 0)
        await asyncio.sleep(0.01)
        assert changed == ["a"]  # no relist needed (its period is an hour here)
        runtime.break_subscriptions()  # containerd restarts
        runtime.exit_container(a[1], 2)  # missed by the stream ...
        for _ in range(100):
            if changed.count("a") >= 2:
                break
            await asyncio.sleep(0.01)
        assert changed.count("a") >= 2  # ... caught by the relist after resubscribing
        b = await start_pod(runtime, "b")  # a container the PLEG never listed
        await asyncio.sleep(0.05)  # its /tasks/start event is seen too
        assert "b" in changed
        changed.clear()
        runtime.exit_container(b[0], 0)
        for _ in range(100):
            if "b" in changed:
                break
            await asyncio.sleep(0.01)
        assert "b" in changed  # found through its labels
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
