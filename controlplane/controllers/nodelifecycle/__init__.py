"""The node lifecycle controller (`controller.py`) over pure node health (`health.py`) and
taint/eviction rules (`taints.py`)."""

from controlplane.controllers.nodelifecycle.controller import NodeLifecycleController, add_flags

__all__ = ["NodeLifecycleController", "add_flags"]
