"""Protobuf schema tables for the API groups kubectl creates objects in, besides core and meta.

apps/v1 Deployment, batch/v1 Job and CronJob, autoscaling/v1 HorizontalPodAutoscaler,
authentication.k8s.io/v1 TokenRequest, rbac/v1 roles and bindings, policy/v1 PodDisruptionBudget,
networking/v1 Ingress, scheduling/v1 PriorityClass. Facts from k8s.io/api generated.proto and
types.go (v0.35.7). Generated-style data, one line per field.
"""

from __future__ import annotations

from controlplane.api.protobuf.schema import (
    BOOL,
    I32,
    I64,
    INTORSTR,
    KEEP,
    LIST,
    MAP,
    STR,
    TIME,
    Message,
)

GROUPS: dict[str, Message] = {
    "apps.Deployment": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "apps.DeploymentSpec", 0),
        3: ("status", "apps.DeploymentStatus", 0),
    },
    "batch.Job": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "batch.JobSpec", 0),
        3: ("status", "batch.JobStatus", 0),
    },
    "batch.CronJob": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "batch.CronJobSpec", 0),
        3: ("status", "batch.CronJobStatus", 0),
    },
    "autoscaling.HorizontalPodAutoscaler": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "autoscaling.HorizontalPodAutoscalerSpec", 0),
        3: ("status", "autoscaling.HorizontalPodAutoscalerStatus", 0),
    },
    "authentication.TokenRequest": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "authentication.TokenRequestSpec", 0),
        3: ("status", "authentication.TokenRequestStatus", 0),
    },
    "rbac.Role": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("rules", "rbac.PolicyRule", LIST),
    },
    "rbac.ClusterRole": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("rules", "rbac.PolicyRule", LIST),
        3: ("aggregationRule", "rbac.AggregationRule", 0),
    },
    "rbac.RoleBinding": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("subjects", "rbac.Subject", LIST),
        3: ("roleRef", "rbac.RoleRef", 0),
    },
    "rbac.ClusterRoleBinding": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("subjects", "rbac.Subject", LIST),
        3: ("roleRef", "rbac.RoleRef", 0),
    },
    "scheduling.PriorityClass": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("value", I32, KEEP),
        3: ("globalDefault", BOOL, 0),
        4: ("description", STR, 0),
        5: ("preemptionPolicy", STR, KEEP),
    },
    "policy.PodDisruptionBudget": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "policy.PodDisruptionBudgetSpec", 0),
        3: ("status", "policy.PodDisruptionBudgetStatus", 0),
    },
    "networking.Ingress": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "networking.IngressSpec", 0),
        3: ("status", "networking.IngressStatus", 0),
    },
    "apps.DeploymentSpec": {
        1: ("replicas", I32, KEEP),
        2: ("selector", "meta.LabelSelector", 0),
        3: ("template", "core.PodTemplateSpec", 0),
        4: ("strategy", "apps.DeploymentStrategy", 0),
        5: ("minReadySeconds", I32, 0),
        6: ("revisionHistoryLimit", I32, KEEP),
        7: ("paused", BOOL, 0),
        9: ("progressDeadlineSeconds", I32, KEEP),
    },
    "apps.DeploymentStatus": {
        1: ("observedGeneration", I64, 0),
        2: ("replicas", I32, 0),
        3: ("updatedReplicas", I32, 0),
        4: ("availableReplicas", I32, 0),
        5: ("unavailableReplicas", I32, 0),
        6: ("conditions", "apps.DeploymentCondition", LIST),
        7: ("readyReplicas", I32, 0),
        8: ("collisionCount", I32, KEEP),
        9: ("terminatingReplicas", I32, KEEP),
    },
    "batch.JobSpec": {
        1: ("parallelism", I32, KEEP),
        2: ("completions", I32, KEEP),
        3: ("activeDeadlineSeconds", I64, KEEP),
        4: ("selector", "meta.LabelSelector", 0),
        5: ("manualSelector", BOOL, KEEP),
        6: ("template", "core.PodTemplateSpec", 0),
        7: ("backoffLimit", I32, KEEP),
        8: ("ttlSecondsAfterFinished", I32, KEEP),
        9: ("completionMode", STR, KEEP),
        10: ("suspend", BOOL, KEEP),
        11: ("podFailurePolicy", "batch.PodFailurePolicy", 0),
        12: ("backoffLimitPerIndex", I32, KEEP),
        13: ("maxFailedIndexes", I32, KEEP),
        14: ("podReplacementPolicy", STR, KEEP),
        15: ("managedBy", STR, KEEP),
        16: ("successPolicy", "batch.SuccessPolicy", 0),
    },
    "batch.JobStatus": {
        1: ("conditions", "batch.JobCondition", LIST),
        2: ("startTime", TIME, 0),
        3: ("completionTime", TIME, 0),
        4: ("active", I32, 0),
        5: ("succeeded", I32, 0),
        6: ("failed", I32, 0),
        7: ("completedIndexes", STR, 0),
        8: ("uncountedTerminatedPods", "batch.UncountedTerminatedPods", 0),
        9: ("ready", I32, KEEP),
        10: ("failedIndexes", STR, KEEP),
        11: ("terminating", I32, KEEP),
    },
    "batch.CronJobSpec": {
        1: ("schedule", STR, KEEP),
        2: ("startingDeadlineSeconds", I64, KEEP),
        3: ("concurrencyPolicy", STR, 0),
        4: ("suspend", BOOL, KEEP),
        5: ("jobTemplate", "batch.JobTemplateSpec", 0),
        6: ("successfulJobsHistoryLimit", I32, KEEP),
        7: ("failedJobsHistoryLimit", I32, KEEP),
        8: ("timeZone", STR, KEEP),
    },
    "batch.CronJobStatus": {
        1: ("active", "core.ObjectReference", LIST),
        4: ("lastScheduleTime", TIME, 0),
        5: ("lastSuccessfulTime", TIME, 0),
    },
    "autoscaling.HorizontalPodAutoscalerSpec": {
        1: ("scaleTargetRef", "autoscaling.CrossVersionObjectReference", 0),
        2: ("minReplicas", I32, KEEP),
        3: ("maxReplicas", I32, KEEP),
        4: ("targetCPUUtilizationPercentage", I32, KEEP),
    },
    "autoscaling.HorizontalPodAutoscalerStatus": {
        1: ("observedGeneration", I64, KEEP),
        2: ("lastScaleTime", TIME, 0),
        3: ("currentReplicas", I32, KEEP),
        4: ("desiredReplicas", I32, KEEP),
        5: ("currentCPUUtilizationPercentage", I32, KEEP),
    },
    "authentication.TokenRequestSpec": {
        1: ("audiences", STR, LIST),
        3: ("boundObjectRef", "authentication.BoundObjectReference", 0),
        4: ("expirationSeconds", I64, KEEP),
    },
    "authentication.TokenRequestStatus": {
        1: ("token", STR, KEEP),
        2: ("expirationTimestamp", TIME, 0),
    },
    "rbac.PolicyRule": {
        1: ("verbs", STR, LIST),
        2: ("apiGroups", STR, LIST),
        3: ("resources", STR, LIST),
        4: ("resourceNames", STR, LIST),
        5: ("nonResourceURLs", STR, LIST),
    },
    "rbac.AggregationRule": {
        1: ("clusterRoleSelectors", "meta.LabelSelector", LIST),
    },
    "rbac.Subject": {
        1: ("kind", STR, KEEP),
        2: ("apiGroup", STR, 0),
        3: ("name", STR, KEEP),
        4: ("namespace", STR, 0),
    },
    "rbac.RoleRef": {
        1: ("apiGroup", STR, KEEP),
        2: ("kind", STR, KEEP),
        3: ("name", STR, KEEP),
    },
    "policy.PodDisruptionBudgetSpec": {
        1: ("minAvailable", INTORSTR, 0),
        2: ("selector", "meta.LabelSelector", 0),
        3: ("maxUnavailable", INTORSTR, 0),
        4: ("unhealthyPodEvictionPolicy", STR, KEEP),
    },
    "policy.PodDisruptionBudgetStatus": {
        1: ("observedGeneration", I64, 0),
        2: ("disruptedPods", TIME, MAP),
        3: ("disruptionsAllowed", I32, KEEP),
        4: ("currentHealthy", I32, KEEP),
        5: ("desiredHealthy", I32, KEEP),
        6: ("expectedPods", I32, KEEP),
        7: ("conditions", "meta.Condition", LIST),
    },
    "networking.IngressSpec": {
        1: ("defaultBackend", "networking.IngressBackend", 0),
        2: ("tls", "networking.IngressTLS", LIST),
        3: ("rules", "networking.IngressRule", LIST),
        4: ("ingressClassName", STR, KEEP),
    },
    "networking.IngressStatus": {
        1: ("loadBalancer", "networking.IngressLoadBalancerStatus", 0),
    },
    "apps.DeploymentStrategy": {
        1: ("type", STR, 0),
        2: ("rollingUpdate", "apps.RollingUpdateDeployment", 0),
    },
    "apps.DeploymentCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        4: ("reason", STR, 0),
        5: ("message", STR, 0),
        6: ("lastUpdateTime", TIME, 0),
        7: ("lastTransitionTime", TIME, 0),
    },
    "batch.PodFailurePolicy": {
        1: ("rules", "batch.PodFailurePolicyRule", LIST),
    },
    "batch.SuccessPolicy": {
        1: ("rules", "batch.SuccessPolicyRule", LIST),
    },
    "batch.JobCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("lastProbeTime", TIME, 0),
        4: ("lastTransitionTime", TIME, 0),
        5: ("reason", STR, 0),
        6: ("message", STR, 0),
    },
    "batch.UncountedTerminatedPods": {
        1: ("succeeded", STR, LIST),
        2: ("failed", STR, LIST),
    },
    "batch.JobTemplateSpec": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "batch.JobSpec", 0),
    },
    "autoscaling.CrossVersionObjectReference": {
        1: ("kind", STR, KEEP),
        2: ("name", STR, KEEP),
        3: ("apiVersion", STR, 0),
    },
    "authentication.BoundObjectReference": {
        1: ("kind", STR, 0),
        2: ("apiVersion", STR, 0),
        3: ("name", STR, 0),
        4: ("uid", STR, 0),
    },
    "networking.IngressBackend": {
        3: ("resource", "core.TypedLocalObjectReference", 0),
        4: ("service", "networking.IngressServiceBackend", 0),
    },
    "networking.IngressTLS": {
        1: ("hosts", STR, LIST),
        2: ("secretName", STR, 0),
    },
    "networking.IngressRule": {
        1: ("host", STR, 0),
        2: ("", "networking.IngressRuleValue", 0),
    },
    "networking.IngressLoadBalancerStatus": {
        1: ("ingress", "networking.IngressLoadBalancerIngress", LIST),
    },
    "apps.RollingUpdateDeployment": {
        1: ("maxUnavailable", INTORSTR, 0),
        2: ("maxSurge", INTORSTR, 0),
    },
    "batch.PodFailurePolicyRule": {
        1: ("action", STR, KEEP),
        2: ("onExitCodes", "batch.PodFailurePolicyOnExitCodesRequirement", 0),
        3: ("onPodConditions", "batch.PodFailurePolicyOnPodConditionsPattern", LIST),
    },
    "batch.SuccessPolicyRule": {
        1: ("succeededIndexes", STR, KEEP),
        2: ("succeededCount", I32, KEEP),
    },
    "networking.IngressServiceBackend": {
        1: ("name", STR, KEEP),
        2: ("port", "networking.ServiceBackendPort", 0),
    },
    "networking.IngressRuleValue": {
        1: ("http", "networking.HTTPIngressRuleValue", 0),
    },
    "networking.IngressLoadBalancerIngress": {
        1: ("ip", STR, 0),
        2: ("hostname", STR, 0),
        4: ("ports", "networking.IngressPortStatus", LIST),
    },
    "batch.PodFailurePolicyOnExitCodesRequirement": {
        1: ("containerName", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", I32, LIST),
    },
    "batch.PodFailurePolicyOnPodConditionsPattern": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
    },
    "networking.ServiceBackendPort": {
        1: ("name", STR, 0),
        2: ("number", I32, 0),
    },
    "networking.HTTPIngressRuleValue": {
        1: ("paths", "networking.HTTPIngressPath", LIST),
    },
    "networking.IngressPortStatus": {
        1: ("port", I32, KEEP),
        2: ("protocol", STR, KEEP),
        3: ("error", STR, KEEP),
    },
    "networking.HTTPIngressPath": {
        1: ("path", STR, 0),
        2: ("backend", "networking.IngressBackend", 0),
        3: ("pathType", STR, KEEP),
    },
}
