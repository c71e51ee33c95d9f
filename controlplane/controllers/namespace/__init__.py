"""The namespace controller, split as Kubernetes splits it: controller (queue, requeueing),
deleter (content deletion, finalize), conditions (the deletion status conditions), discovery
(what the server serves, read through the API)."""

from controlplane.controllers.namespace.controller import NamespaceController

__all__ = ["NamespaceController"]
