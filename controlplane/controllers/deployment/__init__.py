"""The Deployment controller (rollouts over ReplicaSets), split as Kubernetes splits it:
controller (handlers, sync), sync (new RS, scaling, cleanup), rollout (strategies), progress
(status and conditions), util (pure arithmetic)."""

from controlplane.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
