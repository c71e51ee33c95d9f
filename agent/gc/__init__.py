"""Garbage collection on the node: dead containers and sandboxes, and unused images.

`policy` holds the kubelet's settings and their validation, `containers` and `images` the pure
planning, `manager` the CRI I/O and the periodic loops the agent starts.
"""

from agent.gc.manager import GarbageCollector, GCError
from agent.gc.policy import GCPolicy, validate

__all__ = ["GCError", "GCPolicy", "GarbageCollector", "validate"]
