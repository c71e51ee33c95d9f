"""The garbage collector over the fake CRI: removals, log files, image GC, Node events, loops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from agent import labels
from agent.gc import GarbageCollector, GCError, GCPolicy
from agent.gc.manager import statvfs_stats
from controlplane.client.events import FakeRecorders
from cri import errors as cri_errors
from cri.fake import FakeRuntime
from cri.v1 import api_pb2 as api

NODE = "n1"
BUSYBOX, PAUSE = "localhost/busybox:1", "localhost/pause:1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def ns(self) -> int:
        return int(self.now * 1e9)


class Pod:
    """A pod's sandbox in the fake runtime, with containers started and exited on demand."""

    def __init__(self, rt: FakeRuntime, uid: str, log_dir: Path) -> None:
        self.rt, self.uid, self.log_dir = rt, uid, log_dir / f"ns_{uid}_{uid}"
        self.config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=uid, namespace="ns", uid=uid),
            log_directory=str(self.log_dir),
            labels={labels.POD_UID: uid, labels.POD_NAME: uid, labels.POD_NAMESPACE: "ns",
                    labels.MANAGED_BY: "true"})
        self.sandbox = ""

    async def start(self) -> Pod:
        self.sandbox = await self.rt.run_pod_sandbox(self.config)
        return self

    async def container(self, name: str, attempt: int, *, exit_code: int | None = 1,
                        image: str = BUSYBOX) -> str:
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name, attempt=attempt),
            image=api.ImageSpec(image=image), log_path=f"{name}/{attempt}.log",
            labels={labels.POD_UID: self.uid, labels.CONTAINER_NAME: name,
                    labels.MANAGED_BY: "true"})
        cid = await self.rt.create_container(self.sandbox, config, self.config)
        (self.log_dir / name).mkdir(parents=True, exist_ok=True)
        (self.log_dir / name / f"{attempt}.log").write_text(f"attempt {attempt}\n")
        await self.rt.start_container(cid)
        if exit_code is not None:
            self.rt.exit_container(cid, exit_code)
        return cid


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(clock: Clock) -> FakeRuntime:
    return FakeRuntime(images={PAUSE: 100, BUSYBOX: 100, "localhost/old:1": 300,
                               "localhost/newer:1": 300}, clock=clock.ns)


def collector(rt: FakeRuntime, clock: Clock, recorders: FakeRecorders, log_dir: Path, *,
              live: set[str], fs: tuple[int, int] = (1000, 500), **policy: object
              ) -> GarbageCollector:
    return GarbageCollector(rt, GCPolicy(**policy), recorder=recorders.recorder("kubelet"),  # type: ignore[arg-type]
                            node_name=NODE, pod_exists=lambda uid: uid in live, log_dir=log_dir,
                            clock=clock, fs_stats=lambda _: fs)


async def remaining(rt: FakeRuntime, uid: str) -> list[tuple[str, int]]:
    listed = await rt.list_containers(api.ContainerFilter(label_selector={labels.POD_UID: uid}))
    return sorted((c.labels[labels.CONTAINER_NAME], c.metadata.attempt) for c in listed)


async def test_dead_containers_beyond_the_limit_go_with_their_logs(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    pod = await Pod(rt, "p", tmp_path).start()
    for attempt in range(3):
        clock.now += 1
        await pod.container("main", attempt)
    clock.now += 1
    await pod.container("main", 3, exit_code=None)  # the current one runs
    gc = collector(rt, clock, FakeRecorders(), tmp_path, live={"p"})
    plan = await gc.collect_containers()
    assert len(plan.containers) == 2 and not plan.sandboxes
    assert await remaining(rt, "p") == [("main", 2), ("main", 3)]
    assert sorted(p.name for p in (pod.log_dir / "main").iterdir()) == ["2.log", "3.log"]
    assert not (await gc.collect_containers())  # nothing more to do


async def test_a_deleted_pods_dead_containers_sandbox_and_log_dir_go(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    pod = await Pod(rt, "gone", tmp_path).start()
    await pod.container("main", 0)
    await rt.stop_pod_sandbox(pod.sandbox)
    keep = await Pod(rt, "kept", tmp_path).start()
    await keep.container("main", 0)
    gc = collector(rt, clock, FakeRecorders(), tmp_path, live={"kept"})
    plan = await gc.collect_containers()
    assert plan.sandboxes == [pod.sandbox]
    assert await remaining(rt, "gone") == [] and await remaining(rt, "kept") == [("main", 0)]
    assert await rt.list_pod_sandbox(api.PodSandboxFilter(
        label_selector={labels.POD_UID: "gone"})) == []
    assert not pod.log_dir.exists() and keep.log_dir.exists()


async def test_a_deleted_pod_whose_sandbox_still_runs_is_left_to_its_worker(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    pod = await Pod(rt, "gone", tmp_path).start()
    await pod.container("main", 0, exit_code=None)
    gc = collector(rt, clock, FakeRecorders(), tmp_path, live=set())
    assert not await gc.collect_containers()
    assert pod.log_dir.exists()


async def test_unmanaged_containers_are_never_touched(rt: FakeRuntime, clock: Clock,
                                                      tmp_path: Path) -> None:
    pod = Pod(rt, "theirs", tmp_path)
    del pod.config.labels[labels.MANAGED_BY]
    await pod.start()
    config = api.ContainerConfig(metadata=api.ContainerMetadata(name="x"),
                                 image=api.ImageSpec(image=BUSYBOX))
    await rt.create_container(pod.sandbox, config, pod.config)
    gc = collector(rt, clock, FakeRecorders(), tmp_path, live=set())
    assert not await gc.collect_containers()
    assert len(await rt.list_containers()) == 1


async def test_image_gc_frees_least_recently_used_unused_images(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    pod = await Pod(rt, "p", tmp_path).start()
    await pod.container("main", 0)  # busybox in use by a dead container: still in use
    rt.pin_image(PAUSE)
    recorders = FakeRecorders()
    gc = collector(rt, clock, recorders, tmp_path, live={"p"}, fs=(1000, 100),
                   min_image_age=120.0)
    with pytest.raises(GCError, match="only found 0 bytes"):  # all first seen now: too young
        await gc.collect_images()
    recorders.events.clear()
    clock.now += 60
    newer = await rt.image_status("localhost/newer:1")
    assert newer is not None
    gc.usage.used({newer.id}, clock())  # as a container GC pass records it
    clock.now += 100
    removed = await gc.collect_images()  # 100 bytes to free: the LRU one, old:1, is enough
    assert [sorted(i.names)[0] for i in removed] == ["localhost/old:1"]
    assert await rt.image_status("localhost/old:1") is None
    assert await rt.image_status("localhost/newer:1") is not None
    assert recorders.events == []


async def test_not_reaching_the_low_threshold_is_reported_on_the_node(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    pod = await Pod(rt, "p", tmp_path).start()
    await pod.container("main", 0, exit_code=None)
    recorders = FakeRecorders()
    gc = collector(rt, clock, recorders, tmp_path, live={"p"}, fs=(1000, 0),
                   image_high_threshold=1, image_low_threshold=0, min_image_age=0,
                   sandbox_image=PAUSE)
    with pytest.raises(GCError, match="Attempted to free 1000 bytes, but only found 600"):
        await gc.collect_images()
    left = sorted(t for i in await rt.list_images() for t in i.repo_tags)
    assert left == [BUSYBOX, PAUSE]  # in use, and the sandbox image
    assert [(e.kind, e.name, e.reason) for e in recorders.events] == [
        ("Node", NODE, "FreeDiskSpaceFailed")]
    recorders.events.clear()
    await gc.image_pass()
    assert recorders.reasons() == ["FreeDiskSpaceFailed"]
    await gc.image_pass()  # fails again: now ImageGCFailed too (only for repeated failures)
    assert recorders.reasons() == ["FreeDiskSpaceFailed", "FreeDiskSpaceFailed",
                                   "ImageGCFailed"]


async def test_image_gc_below_the_high_threshold_does_nothing(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    gc = collector(rt, clock, FakeRecorders(), tmp_path, live=set(), fs=(1000, 500),
                   min_image_age=0)
    assert await gc.collect_images() == []
    assert rt.called("remove_image") == []


async def test_images_preloaded_from_the_images_dir_are_pinned(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    recorders = FakeRecorders()
    gc = collector(rt, clock, recorders, tmp_path, live=set(), fs=(1000, 0),
                   image_high_threshold=1, image_low_threshold=0, min_image_age=0,
                   sandbox_image=PAUSE)
    gc.pin(["localhost/old:1", ""])  # as main does with preload's imported names
    newer = await rt.image_status("localhost/newer:1")
    assert newer is not None
    gc.pin([newer.id])  # an image named by its id (as a digest reference) is pinned too
    with pytest.raises(GCError, match="only found 100 bytes"):  # busybox only
        await gc.collect_images()
    left = sorted(t for i in await rt.list_images() for t in i.repo_tags)
    assert left == ["localhost/newer:1", "localhost/old:1", PAUSE]
    assert "preloaded=2" in repr(gc)


async def test_zero_capacity_is_an_invalid_disk_capacity(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    recorders = FakeRecorders()
    gc = collector(rt, clock, recorders, tmp_path, live=set(), fs=(0, 0))
    with pytest.raises(GCError, match="invalid capacity 0 on image filesystem"):
        await gc.collect_images()
    assert recorders.reasons() == ["InvalidDiskCapacity"]


async def test_loops_survive_runtime_errors_and_report_them(
        rt: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    recorders = FakeRecorders()
    gc = collector(rt, clock, recorders, tmp_path, live=set(), container_gc_period=0.01,
                   image_high_threshold=100)
    unavailable = cri_errors.Unavailable(rt.socket, "ListContainers",
                                         grpc.StatusCode.UNAVAILABLE, "containerd went away")
    rt.fail_next("list_containers", unavailable)
    task = asyncio.create_task(gc.run())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(rt.called("list_containers")) >= 3:
            break
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorders.reasons() == ["ContainerGCFailed"]
    assert rt.called("list_images") == []  # image GC off at 100


def test_statvfs_of_a_real_filesystem(tmp_path: Path) -> None:
    capacity, available = statvfs_stats(str(tmp_path))
    assert capacity > 0 and 0 <= available <= capacity
