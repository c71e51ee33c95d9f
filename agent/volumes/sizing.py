"""The size of a memory-backed volume: the kubelet's calculateEmptyDirMemorySize.

A tmpfs may hold at most what the pod may use: the node's allocatable memory, lowered to the
pod's memory limit when every container declares one, lowered again to the volume's sizeLimit.
None when nothing bounds it (the kernel's default, half of RAM, then applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.volumes.errors import SourceError
from controlplane.api import quantity


def _limit(container: Mapping[str, Any]) -> int | None:
    value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return quantity.value(value) if value not in (None, "") else None


def pod_memory_limit(pod: Mapping[str, Any]) -> int | None:
    """The pod's memory limit: its containers' sum, or an init container's if larger."""
    spec = pod.get("spec") or {}
    limits = [_limit(c) for c in spec.get("containers") or []]
    init_limits = [_limit(c) for c in spec.get("initContainers") or []]
    if not limits or any(v is None for v in [*limits, *init_limits]):
        return None
    return max([sum(v for v in limits if v is not None),
                *(v for v in init_limits if v is not None)])


def memory_size(pod: Mapping[str, Any], size_limit: Any,
                node_allocatable: Mapping[str, Any]) -> int | None:
    """The tmpfs size in bytes for a memory-backed volume of `pod`."""
    try:
        allocatable = node_allocatable.get("memory")
        size = quantity.value(allocatable) if allocatable not in (None, "") else None
        for bound in (pod_memory_limit(pod),
                      quantity.value(size_limit) if size_limit not in (None, "") else None):
            if bound is not None and bound > 0 and (size is None or bound <= size):
                size = bound
    except quantity.QuantityError as exc:
        raise SourceError(str(exc)) from exc
    return size
