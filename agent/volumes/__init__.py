"""Pod volumes on the node: emptyDir, hostPath, configMap, secret, downwardAPI and projected.

`VolumeManager` is the agent's entry point (setup, container_mounts, refresh, teardown);
`VolumeError` is what a pod whose volume cannot be set up gets (a FailedMount event).
"""

from agent.volumes.errors import VolumeError
from agent.volumes.manager import VolumeManager

__all__ = ["VolumeError", "VolumeManager"]
