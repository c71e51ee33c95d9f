"""The garbage collector, split as Kubernetes splits it: graph (the ownership graph the informers
feed), collector (attemptToDelete and attemptToOrphan over the API), resources (what is
watched, and mapping an ownerReference's kind to a resource)."""

from controlplane.controllers.garbagecollector.collector import GarbageCollector

__all__ = ["GarbageCollector"]
