"""The node agent (kubelet-like): runs the pods bound to its node through containerd's CRI."""
