"""The garbage collector's I/O: list the runtime, apply the plans, report failures on the Node.

Two loops beside the pod workers (they never wait on each other; every CRI call has its
deadline): container GC every `container_gc_period` (the kubelet's 1 minute), image GC every
`image_gc_period` (5 minutes) unless the high threshold is 100. Only containers and sandboxes
this agent created (the `io.pinnace.managed` label) are collected; every container on the
runtime counts for images in use; the images preloaded from `--images-dir` (`pin`) are pinned,
never removed (an air-gapped node could not get them back). A removed container's log file goes
with it, a pod log directory once its pod is gone. Failures are logged and become the kubelet's
Node events (ContainerGCFailed; FreeDiskSpaceFailed, InvalidDiskCapacity, and ImageGCFailed when
image GC failed twice in a row); nothing here ever ends the agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from agent import labels
from agent.gc.containers import (
    ContainerGCPlan,
    PodExists,
    container_record,
    plan_containers,
    sandbox_record,
    stale_log_dirs,
)
from agent.gc.images import (
    ImageInfo,
    ImageUsage,
    bytes_to_free,
    container_image_refs,
    image_info,
    plan_images,
    usage_percent,
)
from agent.gc.policy import GCPolicy
from controlplane.client.events import Recorder
from cri import errors as cri_errors
from cri.v1 import api_pb2 as api

log = logging.getLogger(__name__)
FsStats = Callable[[str], tuple[int, int]]  # mountpoint -> (capacity, available) in bytes


class GCError(Exception):
    """A garbage collection pass that could not do its work (the message is the event's)."""


def statvfs_stats(mountpoint: str) -> tuple[int, int]:
    """Capacity and available bytes of the filesystem holding `mountpoint`."""
    st = os.statvfs(mountpoint)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


class GarbageCollector:
    def __init__(self, runtime: Any, policy: GCPolicy, *, recorder: Recorder, node_name: str,
                 pod_exists: PodExists, log_dir: Path | None = None,
                 clock: Callable[[], float] = time.time,
                 fs_stats: FsStats = statvfs_stats) -> None:
        self.runtime = runtime
        self.policy = policy
        self.recorder = recorder
        self.pod_exists = pod_exists
        self.log_dir = log_dir
        self.clock = clock
        self.fs_stats = fs_stats
        self.usage = ImageUsage()
        self.node_ref = {"kind": "Node", "apiVersion": "v1",
                         "metadata": {"name": node_name, "uid": node_name}}
        self._sandbox_image = policy.sandbox_image
        self.preloaded: set[str] = set()  # names imported from --images-dir: pinned
        self._image_gc_failed = False

    def __repr__(self) -> str:
        return f"<GarbageCollector {self.policy} {self.usage!r} preloaded={len(self.preloaded)}>"

    def pin(self, names: Iterable[str]) -> None:
        """Never collect these images (those preloaded from --images-dir: an air-gapped node
        could not pull them back), as CRI-pinned images are never collected."""
        self.preloaded.update(n for n in names if n)

    # -- loops -----------------------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(self._container_loop(), self._image_loop())

    async def _container_loop(self) -> None:
        while True:
            try:
                await self.collect_containers()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never fatal: log, tell, try again next period
                log.error("Container garbage collection failed: %s", exc)
                self.recorder.event(self.node_ref, "Warning", "ContainerGCFailed", str(exc))
            await asyncio.sleep(self.policy.container_gc_period)

    async def _image_loop(self) -> None:
        if not self.policy.image_gc_enabled:
            log.info("image GC disabled (--image-gc-high-threshold=100)")
            return
        while True:
            await self.image_pass()
            await asyncio.sleep(self.policy.image_gc_period)

    async def image_pass(self) -> None:
        """One image GC pass with the kubelet's reporting: an event for repeated failures."""
        try:
            await self.collect_images()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._image_gc_failed:
                log.error("Image garbage collection failed multiple times in a row: %s", exc)
                self.recorder.event(self.node_ref, "Warning", "ImageGCFailed", str(exc))
            else:
                log.error("Image garbage collection failed once: %s", exc)
            self._image_gc_failed = True
        else:
            self._image_gc_failed = False

    # -- containers ------------------------------------------------------------------------------

    async def collect_containers(self) -> ContainerGCPlan:
        """One container GC pass; returns what it removed (or tried to)."""
        managed = {labels.MANAGED_BY: "true"}
        containers = await self.runtime.list_containers(api.ContainerFilter(
            label_selector=managed))
        sandboxes = await self.runtime.list_pod_sandbox(api.PodSandboxFilter(
            label_selector=managed))
        now = self.clock()
        self.usage.used(container_image_refs(containers), now)
        plan = plan_containers([container_record(c) for c in containers],
                               [sandbox_record(s) for s in sandboxes],
                               pod_exists=self.pod_exists, policy=self.policy,
                               now=int(now * 1e9))
        for container_id in plan.containers:
            await self._remove_container(container_id)
        for sandbox_id in plan.sandboxes:
            await self._remove_sandbox(sandbox_id)
        if plan:
            log.info("container GC removed %d containers, %d sandboxes", len(plan.containers),
                     len(plan.sandboxes))
        removed_sandboxes = set(plan.sandboxes)
        runtime_uids = {s.labels.get(labels.POD_UID, "") for s in sandboxes
                        if s.id not in removed_sandboxes}
        await self._remove_log_dirs(runtime_uids)
        return plan

    async def _remove_container(self, container_id: str) -> None:
        try:
            status = await self.runtime.container_status(container_id)
            await self.runtime.remove_container(container_id)
        except cri_errors.NotFound:
            return
        except cri_errors.CRIError as exc:  # the kubelet logs and goes on with the others
            log.error("failed to remove container %s: %s", container_id, exc)
            return
        self._remove_log_file(status.log_path)

    def _remove_log_file(self, path: str) -> None:
        if not path or self.log_dir is None:
            return
        log_file = Path(path)
        if not log_file.is_absolute() or not log_file.is_relative_to(self.log_dir):
            return  # only what the agent laid out under its log directory
        try:
            log_file.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("failed to remove container log %s: %s", path, exc)

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        try:  # stop first, in case it never was (the kubelet guards the same way)
            await self.runtime.stop_pod_sandbox(sandbox_id)
            await self.runtime.remove_pod_sandbox(sandbox_id)
        except cri_errors.NotFound:
            pass
        except cri_errors.CRIError as exc:
            log.error("failed to remove pod sandbox %s: %s", sandbox_id, exc)

    async def _remove_log_dirs(self, runtime_uids: set[str]) -> None:
        if self.log_dir is None or not self.log_dir.is_dir():
            return
        names = [p.name for p in self.log_dir.iterdir() if p.is_dir()]
        for name in stale_log_dirs(names, pod_exists=self.pod_exists,
                                   runtime_uids=runtime_uids):
            await asyncio.to_thread(shutil.rmtree, self.log_dir / name, True)

    # -- images ----------------------------------------------------------------------------------

    async def collect_images(self) -> list[ImageInfo]:
        """One image GC pass; returns the images removed. Raises GCError when it could not
        bring usage down to the low threshold."""
        now = self.clock()
        images = [image_info(i) for i in await self.runtime.list_images()]
        in_use = container_image_refs(await self.runtime.list_containers())
        self.usage.detect(images, in_use, now)
        capacity, available = await self._image_fs()
        if capacity <= 0:
            message = f"invalid capacity {capacity} on image filesystem"
            self.recorder.event(self.node_ref, "Warning", "InvalidDiskCapacity", message)
            raise GCError(message)
        high, low = self.policy.image_high_threshold, self.policy.image_low_threshold
        amount = bytes_to_free(capacity, available, high=high, low=low)
        if amount <= 0:
            return []
        log.info("Disk usage on image filesystem is at %d%% which is over the high threshold "
                 "(%d%%); trying to free %d bytes down to the low threshold (%d%%)",
                 usage_percent(capacity, available), high, amount, low)
        victims = plan_images(images, self.usage, in_use=in_use, pinned=await self._pinned(),
                              amount=amount, now=now, min_age=self.policy.min_image_age)
        removed, failures = [], []
        for image in victims:
            try:
                await self.runtime.remove_image(image.id)
            except cri_errors.CRIError as exc:
                failures.append(f"{image.id}: {exc}")
                continue
            log.info("removed image %s (%s, %d bytes)", image.id, ",".join(sorted(image.names)),
                     image.size)
            self.usage.forget(image.id)
            removed.append(image)
        if failures:
            raise GCError("failed to remove images: " + "; ".join(failures))
        freed = sum(image.size for image in removed)
        if freed < amount:
            message = (f"Failed to garbage collect required amount of images. Attempted to "
                       f"free {amount} bytes, but only found {freed} bytes eligible to free.")
            self.recorder.event(self.node_ref, "Warning", "FreeDiskSpaceFailed", message)
            raise GCError(message)
        return removed

    async def _image_fs(self) -> tuple[int, int]:
        info = await self.runtime.image_fs_info()
        if not info.image_filesystems:
            raise GCError("imageFs information is unavailable")
        mountpoint = info.image_filesystems[0].fs_id.mountpoint
        try:
            return await asyncio.to_thread(self.fs_stats, mountpoint)
        except OSError as exc:
            raise GCError(f"imageFs information is unavailable: {mountpoint}: "
                          f"{exc.strerror or exc}") from None

    async def _pinned(self) -> set[str]:
        """The images never collected, by name and id: the sandbox (pause) image (from the
        flag, else containerd's config) and the images preloaded from --images-dir."""
        pinned = set(self.preloaded)
        for name in sorted(self.preloaded):
            pinned |= await self._image_id(name)
        return pinned | await self._sandbox_pinned()

    async def _image_id(self, name: str) -> set[str]:
        try:
            found = await self.runtime.image_status(name)
        except cri_errors.CRIError:
            return set()
        return {found.id} if found is not None and found.id else set()

    async def _sandbox_pinned(self) -> set[str]:
        if not self._sandbox_image:
            try:
                status = await self.runtime.status(verbose=True)
                config = json.loads(status.info.get("config") or "{}")
                self._sandbox_image = str(config.get("sandboxImage") or "")
            except (cri_errors.CRIError, ValueError, AttributeError) as exc:
                log.warning("cannot read containerd's sandbox image: %s", exc)
        if not self._sandbox_image:
            return set()
        return {self._sandbox_image} | await self._image_id(self._sandbox_image)
