"""ImageLocality: prefer nodes that already hold the pod's images, weighted by how widely each
image is spread (so one node with a big image does not attract every replica). Uses
node.status.images; nodes that report none all score 0.
"""

from __future__ import annotations

from controlplane.scheduler.nodeinfo import NodeInfo, Snapshot, normalized_image_name
from controlplane.scheduler.plugin import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_IMAGES,
    SKIP,
    CycleState,
    ScorePlugin,
    Status,
)
from controlplane.scheduler.podinfo import PodInfo

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


class ImageLocality(ScorePlugin):
    name = "ImageLocality"
    events = frozenset({NODE_ADD, NODE_IMAGES})

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None:
        images = [normalized_image_name(str(c.get("image") or ""))
                  for key in ("initContainers", "containers") for c in pod.spec.get(key) or []]
        spread = {image: snapshot.image_nodes.get(image, 0) / max(len(snapshot.nodes), 1)
                  for image in images}
        if not any(spread.values()):
            return SKIP  # no node has any of them: every node would score 0
        state.write(self.name, (images, spread))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        images, spread = state.read(self.name, tuple)
        total = sum(int(node.images[image] * spread[image])
                    for image in images if image in node.images)
        most = MAX_CONTAINER_THRESHOLD * max(len(images), 1)
        total = min(max(total, MIN_THRESHOLD), most)
        return MAX_NODE_SCORE * (total - MIN_THRESHOLD) // (most - MIN_THRESHOLD)
