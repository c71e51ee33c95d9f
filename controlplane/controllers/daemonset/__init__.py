"""The DaemonSet controller, split as Kubernetes splits it: controller (handlers, sync, writes),
plan (manage, rolling update and status as pure functions), history (ControllerRevisions),
util (eligibility of nodes, the pods it creates, IntOrString bounds)."""

from controlplane.controllers.daemonset.controller import DaemonSetController

__all__ = ["DaemonSetController"]
