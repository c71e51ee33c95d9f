"""The garbage collection policy: the kubelet's container and image GC settings, validated.

Defaults are the kubelet's: at most 1 dead container per (pod, container name) so that
`kubectl logs --previous` keeps working, no global limit (-1), no minimum container age; image GC
above 85 % usage of the image filesystem down to 80 %, images younger than 2 minutes kept,
high threshold 100 disables it. Containers are collected every minute, images every 5 minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTAINER_GC_PERIOD = 60.0  # the kubelet's ContainerGCPeriod
IMAGE_GC_PERIOD = 300.0  # the kubelet's ImageGCPeriod


@dataclass(frozen=True)
class GCPolicy:
    max_per_pod_container: int = 1  # --maximum-dead-containers-per-container (< 0: no limit)
    max_containers: int = -1  # --maximum-dead-containers (< 0: no limit)
    min_container_age: float = 0.0  # --minimum-container-ttl-duration, seconds
    image_high_threshold: int = 85  # --image-gc-high-threshold, percent (100: image GC off)
    image_low_threshold: int = 80  # --image-gc-low-threshold, percent
    min_image_age: float = 120.0  # --minimum-image-ttl-duration, seconds
    sandbox_image: str = ""  # --pod-infra-container-image ("": ask containerd's CRI config)
    container_gc_period: float = CONTAINER_GC_PERIOD
    image_gc_period: float = IMAGE_GC_PERIOD

    @property
    def image_gc_enabled(self) -> bool:
        return self.image_high_threshold < 100


def validate(policy: GCPolicy) -> list[str]:
    """The configuration errors, worded as the kubelet's validation words them."""
    problems = []
    high, low = policy.image_high_threshold, policy.image_low_threshold
    if not 0 <= high <= 100:
        problems.append(f"imageGCHighThresholdPercent (--image-gc-high-threshold) {high} must "
                        "be between 0 and 100, inclusive")
    if not 0 <= low <= 100:
        problems.append(f"imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be "
                        "between 0 and 100, inclusive")
    if low >= high:
        problems.append(f"imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be "
                        f"less than imageGCHighThresholdPercent (--image-gc-high-threshold) "
                        f"{high}")
    if policy.min_container_age < 0:
        problems.append("minimumContainerTTLDuration (--minimum-container-ttl-duration) must "
                        "not be negative")
    if policy.min_image_age < 0:
        problems.append("imageMinimumGCAge (--minimum-image-ttl-duration) must not be negative")
    if policy.container_gc_period <= 0 or policy.image_gc_period <= 0:
        problems.append("--container-gc-period and --image-gc-period must be positive")
    return problems
