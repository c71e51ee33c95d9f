"""The two errors of the volume package: one volume's source, and a volume of a pod.

`SourceError` is raised by the plugins with Kubernetes' message (`configmap "x" not found`);
the manager turns it into `VolumeError`, which names the volume and renders as the kubelet's
FailedMount event: `MountVolume.SetUp failed for volume "v" : configmap "x" not found`.
"""

from __future__ import annotations


class SourceError(Exception):
    """A volume's content cannot be produced; `str()` is Kubernetes' message."""


class VolumeError(Exception):
    """A volume of the pod cannot be set up; the pod's containers must not start."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume
        self.message = message
