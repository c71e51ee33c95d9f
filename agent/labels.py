"""The CRI labels and annotations the agent puts on sandboxes and containers, and the log layout.

They are how the agent finds its pods again (after a restart, for logs and exec): every sandbox
carries the pod's name, namespace and uid; every container also its container name; the values
are Kubernetes' own keys, so `crictl` users recognise them. Logs live where the kubelet puts
them: `<log root>/<namespace>_<pod>_<uid>/<container>/<restartCount>.log`.
"""

from __future__ import annotations

from pathlib import Path

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
MANAGED_BY = "io.pinnace.managed"  # "true" on everything this agent created
# Annotations on containers (strings, as the CRI requires).
RESTART_COUNT = "io.kubernetes.container.restartCount"
CONTAINER_HASH = "io.kubernetes.container.hash"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
INIT_CONTAINER = "io.pinnace.container.init"  # "true" for init containers
POD_SANDBOX_CONTAINER = "POD"  # the name Kubernetes gives the sandbox in its labels


def pod_log_dir(log_root: Path, namespace: str, name: str, uid: str) -> Path:
    return log_root / f"{namespace}_{name}_{uid}"


def container_log_path(container: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory, as the CRI's ContainerConfig.log_path."""
    return f"{container}/{restart_count}.log"
