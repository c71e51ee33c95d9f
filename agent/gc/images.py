"""Image garbage collection planning: how many bytes to free, and which images, in which order.

Pure logic over plain records (the kubelet's image_gc_manager.go):
- `ImageUsage` remembers, per image id, when the agent first saw it and when a container last
  used it (an image never seen in use counts as used when it was first seen);
- over the high threshold of the image filesystem's usage, free down to the low threshold:
  `capacity * (100 - low) / 100 - available` bytes;
- candidates least recently used first (then first seen); an image in use by any container
  (running or not), a pinned image (CRI `Image.pinned`, the sandbox image) or one first seen
  less than the minimum age ago is never removed; removal stops once enough bytes are freed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cri.v1 import api_pb2 as api


@dataclass(frozen=True)
class ImageInfo:
    id: str
    names: frozenset[str]  # repo tags and repo digests
    size: int
    pinned: bool = False

    def matches(self, refs: set[str]) -> bool:
        return self.id in refs or not self.names.isdisjoint(refs)


@dataclass
class ImageRecord:
    first_detected: float
    last_used: float
    size: int


def image_info(image: api.Image) -> ImageInfo:
    return ImageInfo(id=image.id, names=frozenset([*image.repo_tags, *image.repo_digests]),
                     size=image.size, pinned=image.pinned)


def container_image_refs(containers: Iterable[api.Container]) -> set[str]:
    """Every way the containers name their images (id, ref, the name they were created with)."""
    refs: set[str] = set()
    for c in containers:
        refs.update(r for r in (c.image_ref, c.image_id, c.image.image) if r)
    return refs


class ImageUsage:
    """When each image on the node was first seen and last used (ids as keys)."""

    def __init__(self) -> None:
        self.records: dict[str, ImageRecord] = {}

    def __repr__(self) -> str:
        return f"<ImageUsage images={len(self.records)}>"

    def detect(self, images: Sequence[ImageInfo], in_use: set[str], now: float) -> None:
        """Record new images, mark the ones in use as used now, forget the ones gone."""
        present = {image.id for image in images}
        for gone in set(self.records) - present:
            del self.records[gone]
        for image in images:
            record = self.records.get(image.id)
            if record is None:
                record = self.records[image.id] = ImageRecord(now, now, image.size)
            record.size = image.size
            if image.matches(in_use):
                record.last_used = now

    def used(self, refs: set[str], now: float) -> None:
        """Containers now name `refs`: mark the known images among them as used now."""
        for image_id, record in self.records.items():
            if image_id in refs:
                record.last_used = now

    def forget(self, image_id: str) -> None:
        self.records.pop(image_id, None)


def usage_percent(capacity: int, available: int) -> int:
    """Usage as the kubelet rounds it: 100 - floor(available * 100 / capacity)."""
    return 100 - available * 100 // capacity


def bytes_to_free(capacity: int, available: int, *, high: int, low: int) -> int:
    """0 below the high threshold; else what brings usage down to the low threshold."""
    if usage_percent(capacity, available) < high:
        return 0
    return max(0, capacity * (100 - low) // 100 - available)


def plan_images(images: Sequence[ImageInfo], usage: ImageUsage, *, in_use: set[str],
                pinned: set[str], amount: int, now: float, min_age: float) -> list[ImageInfo]:
    """The images to remove, in order, to free `amount` bytes (fewer if not enough qualify)."""
    if amount <= 0:
        return []

    def order(image: ImageInfo) -> tuple[float, float, str]:
        record = usage.records.get(image.id) or ImageRecord(now, now, image.size)
        return record.last_used, record.first_detected, image.id

    chosen: list[ImageInfo] = []
    freed = 0
    for image in sorted(images, key=order):
        record = usage.records.get(image.id)
        if image.pinned or image.matches(pinned) or image.matches(in_use):
            continue
        if record is None or now - record.first_detected < min_age:
            continue
        chosen.append(image)
        freed += image.size
        if freed >= amount:
            break
    return chosen
