"""Schema tables for the served kinds of apps, events, coordination, discovery, autoscaling and
policy that the protobuf tables lack: ReplicaSet, DaemonSet, events.k8s.io Event, Lease,
EndpointSlice, autoscaling/v2 HorizontalPodAutoscaler ("autoscalingv2." names), Scale, Eviction.

Same shape as controlplane.api.protobuf.schema_groups. Facts from k8s.io/api types.go (v0.35.7,
the version of the protobuf tables). Generated-style data, one line per field.
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
    MICROTIME,
    QUANTITY,
    STR,
    TIME,
    Message,
)

GROUPS: dict[str, Message] = {
    "events.Event": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("eventTime", MICROTIME, 0),
        3: ("series", "events.EventSeries", 0),
        4: ("reportingController", STR, 0),
        5: ("reportingInstance", STR, 0),
        6: ("action", STR, 0),
        7: ("reason", STR, 0),
        8: ("regarding", "core.ObjectReference", 0),
        9: ("related", "core.ObjectReference", 0),
        10: ("note", STR, 0),
        11: ("type", STR, 0),
        12: ("deprecatedSource", "core.EventSource", 0),
        13: ("deprecatedFirstTimestamp", TIME, 0),
        14: ("deprecatedLastTimestamp", TIME, 0),
        15: ("deprecatedCount", I32, 0),
    },
    "apps.ReplicaSet": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "apps.ReplicaSetSpec", 0),
        3: ("status", "apps.ReplicaSetStatus", 0),
    },
    "apps.DaemonSet": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "apps.DaemonSetSpec", 0),
        3: ("status", "apps.DaemonSetStatus", 0),
    },
    "coordination.Lease": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "coordination.LeaseSpec", 0),
    },
    "discovery.EndpointSlice": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("endpoints", "discovery.Endpoint", LIST),
        3: ("ports", "discovery.EndpointPort", LIST),
        4: ("addressType", STR, KEEP),
    },
    "autoscalingv2.HorizontalPodAutoscaler": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "autoscalingv2.HorizontalPodAutoscalerSpec", 0),
        3: ("status", "autoscalingv2.HorizontalPodAutoscalerStatus", 0),
    },
    "autoscaling.Scale": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "autoscaling.ScaleSpec", 0),
        3: ("status", "autoscaling.ScaleStatus", 0),
    },
    "policy.Eviction": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("deleteOptions", "meta.DeleteOptions", 0),
    },
    "events.EventSeries": {
        1: ("count", I32, KEEP),
        2: ("lastObservedTime", MICROTIME, 0),
    },
    "apps.ReplicaSetSpec": {
        1: ("replicas", I32, KEEP),
        2: ("selector", "meta.LabelSelector", 0),
        3: ("template", "core.PodTemplateSpec", 0),
        4: ("minReadySeconds", I32, 0),
    },
    "apps.ReplicaSetStatus": {
        1: ("replicas", I32, KEEP),
        2: ("fullyLabeledReplicas", I32, 0),
        3: ("observedGeneration", I64, 0),
        4: ("readyReplicas", I32, 0),
        5: ("availableReplicas", I32, 0),
        6: ("conditions", "apps.ReplicaSetCondition", LIST),
        7: ("terminatingReplicas", I32, KEEP),
    },
    "apps.DaemonSetSpec": {
        1: ("selector", "meta.LabelSelector", 0),
        2: ("template", "core.PodTemplateSpec", 0),
        3: ("updateStrategy", "apps.DaemonSetUpdateStrategy", 0),
        4: ("minReadySeconds", I32, 0),
        6: ("revisionHistoryLimit", I32, KEEP),
    },
    "apps.DaemonSetStatus": {
        1: ("currentNumberScheduled", I32, KEEP),
        2: ("numberMisscheduled", I32, KEEP),
        3: ("desiredNumberScheduled", I32, KEEP),
        4: ("numberReady", I32, KEEP),
        5: ("observedGeneration", I64, 0),
        6: ("updatedNumberScheduled", I32, 0),
        7: ("numberAvailable", I32, 0),
        8: ("numberUnavailable", I32, 0),
        9: ("collisionCount", I32, KEEP),
        10: ("conditions", "apps.DaemonSetCondition", LIST),
    },
    "coordination.LeaseSpec": {
        1: ("holderIdentity", STR, KEEP),
        2: ("leaseDurationSeconds", I32, KEEP),
        3: ("acquireTime", MICROTIME, 0),
        4: ("renewTime", MICROTIME, 0),
        5: ("leaseTransitions", I32, KEEP),
        6: ("strategy", STR, KEEP),
        7: ("preferredHolder", STR, KEEP),
    },
    "discovery.Endpoint": {
        1: ("addresses", STR, LIST),
        2: ("conditions", "discovery.EndpointConditions", 0),
        3: ("hostname", STR, KEEP),
        4: ("targetRef", "core.ObjectReference", 0),
        5: ("deprecatedTopology", STR, MAP),
        6: ("nodeName", STR, KEEP),
        7: ("zone", STR, KEEP),
        8: ("hints", "discovery.EndpointHints", 0),
    },
    "discovery.EndpointPort": {
        1: ("name", STR, KEEP),
        2: ("protocol", STR, KEEP),
        3: ("port", I32, KEEP),
        4: ("appProtocol", STR, KEEP),
    },
    "autoscalingv2.HorizontalPodAutoscalerSpec": {
        1: ("scaleTargetRef", "autoscalingv2.CrossVersionObjectReference", 0),
        2: ("minReplicas", I32, KEEP),
        3: ("maxReplicas", I32, KEEP),
        4: ("metrics", "autoscalingv2.MetricSpec", LIST),
        5: ("behavior", "autoscalingv2.HorizontalPodAutoscalerBehavior", 0),
    },
    "autoscalingv2.HorizontalPodAutoscalerStatus": {
        1: ("observedGeneration", I64, KEEP),
        2: ("lastScaleTime", TIME, 0),
        3: ("currentReplicas", I32, 0),
        4: ("desiredReplicas", I32, KEEP),
        5: ("currentMetrics", "autoscalingv2.MetricStatus", LIST),
        6: ("conditions", "autoscalingv2.HorizontalPodAutoscalerCondition", LIST),
    },
    "autoscaling.ScaleSpec": {
        1: ("replicas", I32, 0),
    },
    "autoscaling.ScaleStatus": {
        1: ("replicas", I32, KEEP),
        2: ("selector", STR, 0),
    },
    "apps.ReplicaSetCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("lastTransitionTime", TIME, 0),
        4: ("reason", STR, 0),
        5: ("message", STR, 0),
    },
    "apps.DaemonSetUpdateStrategy": {
        1: ("type", STR, 0),
        2: ("rollingUpdate", "apps.RollingUpdateDaemonSet", 0),
    },
    "apps.DaemonSetCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("lastTransitionTime", TIME, 0),
        4: ("reason", STR, 0),
        5: ("message", STR, 0),
    },
    "discovery.EndpointConditions": {
        1: ("ready", BOOL, KEEP),
        2: ("serving", BOOL, KEEP),
        3: ("terminating", BOOL, KEEP),
    },
    "discovery.EndpointHints": {
        1: ("forZones", "discovery.ForZone", LIST),
        2: ("forNodes", "discovery.ForNode", LIST),
    },
    "autoscalingv2.CrossVersionObjectReference": {
        1: ("kind", STR, KEEP),
        2: ("name", STR, KEEP),
        3: ("apiVersion", STR, 0),
    },
    "autoscalingv2.MetricSpec": {
        1: ("type", STR, KEEP),
        2: ("object", "autoscalingv2.ObjectMetricSource", 0),
        3: ("pods", "autoscalingv2.PodsMetricSource", 0),
        4: ("resource", "autoscalingv2.ResourceMetricSource", 0),
        5: ("external", "autoscalingv2.ExternalMetricSource", 0),
        7: ("containerResource", "autoscalingv2.ContainerResourceMetricSource", 0),
    },
    "autoscalingv2.HorizontalPodAutoscalerBehavior": {
        1: ("scaleUp", "autoscalingv2.HPAScalingRules", 0),
        2: ("scaleDown", "autoscalingv2.HPAScalingRules", 0),
    },
    "autoscalingv2.MetricStatus": {
        1: ("type", STR, KEEP),
        2: ("object", "autoscalingv2.ObjectMetricStatus", 0),
        3: ("pods", "autoscalingv2.PodsMetricStatus", 0),
        4: ("resource", "autoscalingv2.ResourceMetricStatus", 0),
        5: ("external", "autoscalingv2.ExternalMetricStatus", 0),
        7: ("containerResource", "autoscalingv2.ContainerResourceMetricStatus", 0),
    },
    "autoscalingv2.HorizontalPodAutoscalerCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("lastTransitionTime", TIME, 0),
        4: ("reason", STR, 0),
        5: ("message", STR, 0),
    },
    "apps.RollingUpdateDaemonSet": {
        1: ("maxUnavailable", INTORSTR, 0),
        2: ("maxSurge", INTORSTR, 0),
    },
    "discovery.ForZone": {
        1: ("name", STR, KEEP),
    },
    "discovery.ForNode": {
        1: ("name", STR, KEEP),
    },
    "autoscalingv2.ObjectMetricSource": {
        1: ("describedObject", "autoscalingv2.CrossVersionObjectReference", 0),
        2: ("target", "autoscalingv2.MetricTarget", 0),
        3: ("metric", "autoscalingv2.MetricIdentifier", 0),
    },
    "autoscalingv2.PodsMetricSource": {
        1: ("metric", "autoscalingv2.MetricIdentifier", 0),
        2: ("target", "autoscalingv2.MetricTarget", 0),
    },
    "autoscalingv2.ResourceMetricSource": {
        1: ("name", STR, KEEP),
        2: ("target", "autoscalingv2.MetricTarget", 0),
    },
    "autoscalingv2.ContainerResourceMetricSource": {
        1: ("name", STR, KEEP),
        2: ("target", "autoscalingv2.MetricTarget", 0),
        3: ("container", STR, KEEP),
    },
    "autoscalingv2.ExternalMetricSource": {
        1: ("metric", "autoscalingv2.MetricIdentifier", 0),
        2: ("target", "autoscalingv2.MetricTarget", 0),
    },
    "autoscalingv2.HPAScalingRules": {
        1: ("selectPolicy", STR, KEEP),
        2: ("policies", "autoscalingv2.HPAScalingPolicy", LIST),
        3: ("stabilizationWindowSeconds", I32, KEEP),
        4: ("tolerance", QUANTITY, 0),
    },
    "autoscalingv2.ObjectMetricStatus": {
        1: ("metric", "autoscalingv2.MetricIdentifier", 0),
        2: ("current", "autoscalingv2.MetricValueStatus", 0),
        3: ("describedObject", "autoscalingv2.CrossVersionObjectReference", 0),
    },
    "autoscalingv2.PodsMetricStatus": {
        1: ("metric", "autoscalingv2.MetricIdentifier", 0),
        2: ("current", "autoscalingv2.MetricValueStatus", 0),
    },
    "autoscalingv2.ResourceMetricStatus": {
        1: ("name", STR, KEEP),
        2: ("current", "autoscalingv2.MetricValueStatus", 0),
    },
    "autoscalingv2.ContainerResourceMetricStatus": {
        1: ("name", STR, KEEP),
        2: ("current", "autoscalingv2.MetricValueStatus", 0),
        3: ("container", STR, KEEP),
    },
    "autoscalingv2.ExternalMetricStatus": {
        1: ("metric", "autoscalingv2.MetricIdentifier", 0),
        2: ("current", "autoscalingv2.MetricValueStatus", 0),
    },
    "autoscalingv2.MetricTarget": {
        1: ("type", STR, KEEP),
        2: ("value", QUANTITY, 0),
        3: ("averageValue", QUANTITY, 0),
        4: ("averageUtilization", I32, KEEP),
    },
    "autoscalingv2.MetricIdentifier": {
        1: ("name", STR, KEEP),
        2: ("selector", "meta.LabelSelector", 0),
    },
    "autoscalingv2.HPAScalingPolicy": {
        1: ("type", STR, KEEP),
        2: ("value", I32, KEEP),
        3: ("periodSeconds", I32, KEEP),
    },
    "autoscalingv2.MetricValueStatus": {
        1: ("value", QUANTITY, 0),
        2: ("averageValue", QUANTITY, 0),
        3: ("averageUtilization", I32, KEEP),
    },
}
