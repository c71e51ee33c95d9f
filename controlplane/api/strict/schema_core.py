"""Schema tables for core/v1 and meta/v1 messages the protobuf tables lack: Pod, Node, Endpoints,
Event, Binding and DeleteOptions, with their status types.

Same shape as controlplane.api.protobuf.schema_core (field number -> json name, type, flags), so
the protobuf decoder can adopt them too. Facts from k8s.io/api core/v1 and k8s.io/apimachinery
meta/v1 types.go (v0.35.7, the version of the protobuf tables). Generated-style data, one line
per field.
"""

from __future__ import annotations

from controlplane.api.protobuf.schema import (
    BOOL,
    I32,
    I64,
    KEEP,
    LIST,
    MAP,
    MICROTIME,
    QUANTITY,
    STR,
    TIME,
    Message,
)

CORE: dict[str, Message] = {
    "core.Pod": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "core.PodSpec", 0),
        3: ("status", "core.PodStatus", 0),
    },
    "core.Node": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("spec", "core.NodeSpec", 0),
        3: ("status", "core.NodeStatus", 0),
    },
    "core.Endpoints": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("subsets", "core.EndpointSubset", LIST),
    },
    "core.Event": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("involvedObject", "core.ObjectReference", 0),
        3: ("reason", STR, 0),
        4: ("message", STR, 0),
        5: ("source", "core.EventSource", 0),
        6: ("firstTimestamp", TIME, 0),
        7: ("lastTimestamp", TIME, 0),
        8: ("count", I32, 0),
        9: ("type", STR, 0),
        10: ("eventTime", MICROTIME, 0),
        11: ("series", "core.EventSeries", 0),
        12: ("action", STR, 0),
        13: ("related", "core.ObjectReference", 0),
        14: ("reportingComponent", STR, KEEP),
        15: ("reportingInstance", STR, KEEP),
    },
    "core.Binding": {
        1: ("metadata", "meta.ObjectMeta", 0),
        2: ("target", "core.ObjectReference", 0),
    },
    "meta.DeleteOptions": {
        1: ("gracePeriodSeconds", I64, KEEP),
        2: ("preconditions", "meta.Preconditions", 0),
        3: ("orphanDependents", BOOL, KEEP),
        4: ("propagationPolicy", STR, KEEP),
        5: ("dryRun", STR, LIST),
        6: ("ignoreStoreReadErrorWithClusterBreakingPotential", BOOL, KEEP),
    },
    "core.PodStatus": {
        1: ("phase", STR, 0),
        2: ("conditions", "core.PodCondition", LIST),
        3: ("message", STR, 0),
        4: ("reason", STR, 0),
        5: ("hostIP", STR, 0),
        6: ("podIP", STR, 0),
        7: ("startTime", TIME, 0),
        8: ("containerStatuses", "core.ContainerStatus", LIST),
        9: ("qosClass", STR, 0),
        10: ("initContainerStatuses", "core.ContainerStatus", LIST),
        11: ("nominatedNodeName", STR, 0),
        12: ("podIPs", "core.PodIP", LIST),
        13: ("ephemeralContainerStatuses", "core.ContainerStatus", LIST),
        14: ("resize", STR, 0),
        15: ("resourceClaimStatuses", "core.PodResourceClaimStatus", LIST),
        16: ("hostIPs", "core.HostIP", LIST),
        17: ("observedGeneration", I64, 0),
        18: ("extendedResourceClaimStatus", "core.PodExtendedResourceClaimStatus", 0),
        19: ("allocatedResources", QUANTITY, MAP),
        20: ("resources", "core.ResourceRequirements", 0),
    },
    "core.NodeSpec": {
        1: ("podCIDR", STR, 0),
        2: ("externalID", STR, 0),
        3: ("providerID", STR, 0),
        4: ("unschedulable", BOOL, 0),
        5: ("taints", "core.Taint", LIST),
        6: ("configSource", "core.NodeConfigSource", 0),
        7: ("podCIDRs", STR, LIST),
    },
    "core.NodeStatus": {
        1: ("capacity", QUANTITY, MAP),
        2: ("allocatable", QUANTITY, MAP),
        3: ("phase", STR, 0),
        4: ("conditions", "core.NodeCondition", LIST),
        5: ("addresses", "core.NodeAddress", LIST),
        6: ("daemonEndpoints", "core.NodeDaemonEndpoints", 0),
        7: ("nodeInfo", "core.NodeSystemInfo", 0),
        8: ("images", "core.ContainerImage", LIST),
        9: ("volumesInUse", STR, LIST),
        10: ("volumesAttached", "core.AttachedVolume", LIST),
        11: ("config", "core.NodeConfigStatus", 0),
        12: ("runtimeHandlers", "core.NodeRuntimeHandler", LIST),
        13: ("features", "core.NodeFeatures", 0),
        14: ("declaredFeatures", STR, LIST),
    },
    "core.EndpointSubset": {
        1: ("addresses", "core.EndpointAddress", LIST),
        2: ("notReadyAddresses", "core.EndpointAddress", LIST),
        3: ("ports", "core.EndpointPort", LIST),
    },
    "core.EventSource": {
        1: ("component", STR, 0),
        2: ("host", STR, 0),
    },
    "core.EventSeries": {
        1: ("count", I32, 0),
        2: ("lastObservedTime", MICROTIME, 0),
    },
    "meta.Preconditions": {
        1: ("uid", STR, KEEP),
        2: ("resourceVersion", STR, KEEP),
    },
    "core.PodCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("lastProbeTime", TIME, 0),
        4: ("lastTransitionTime", TIME, 0),
        5: ("reason", STR, 0),
        6: ("message", STR, 0),
        7: ("observedGeneration", I64, 0),
    },
    "core.HostIP": {
        1: ("ip", STR, KEEP),
    },
    "core.PodIP": {
        1: ("ip", STR, KEEP),
    },
    "core.ContainerStatus": {
        1: ("name", STR, KEEP),
        2: ("state", "core.ContainerState", 0),
        3: ("lastState", "core.ContainerState", 0),
        4: ("ready", BOOL, KEEP),
        5: ("restartCount", I32, KEEP),
        6: ("image", STR, KEEP),
        7: ("imageID", STR, KEEP),
        8: ("containerID", STR, 0),
        9: ("started", BOOL, KEEP),
        10: ("allocatedResources", QUANTITY, MAP),
        11: ("resources", "core.ResourceRequirements", 0),
        12: ("volumeMounts", "core.VolumeMountStatus", LIST),
        13: ("user", "core.ContainerUser", 0),
        14: ("allocatedResourcesStatus", "core.ResourceStatus", LIST),
        15: ("stopSignal", STR, KEEP),
    },
    "core.PodResourceClaimStatus": {
        1: ("name", STR, KEEP),
        2: ("resourceClaimName", STR, KEEP),
    },
    "core.PodExtendedResourceClaimStatus": {
        1: ("requestMappings", "core.ContainerExtendedResourceRequest", LIST),
        2: ("resourceClaimName", STR, KEEP),
    },
    "core.Taint": {
        1: ("key", STR, KEEP),
        2: ("value", STR, 0),
        3: ("effect", STR, KEEP),
        4: ("timeAdded", TIME, 0),
    },
    "core.NodeConfigSource": {
        2: ("configMap", "core.ConfigMapNodeConfigSource", 0),
    },
    "core.NodeCondition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("lastHeartbeatTime", TIME, 0),
        4: ("lastTransitionTime", TIME, 0),
        5: ("reason", STR, 0),
        6: ("message", STR, 0),
    },
    "core.NodeAddress": {
        1: ("type", STR, KEEP),
        2: ("address", STR, KEEP),
    },
    "core.NodeDaemonEndpoints": {
        1: ("kubeletEndpoint", "core.DaemonEndpoint", 0),
    },
    "core.NodeSystemInfo": {
        1: ("machineID", STR, KEEP),
        2: ("systemUUID", STR, KEEP),
        3: ("bootID", STR, KEEP),
        4: ("kernelVersion", STR, KEEP),
        5: ("osImage", STR, KEEP),
        6: ("containerRuntimeVersion", STR, KEEP),
        7: ("kubeletVersion", STR, KEEP),
        8: ("kubeProxyVersion", STR, KEEP),
        9: ("operatingSystem", STR, KEEP),
        10: ("architecture", STR, KEEP),
        11: ("swap", "core.NodeSwapStatus", 0),
    },
    "core.ContainerImage": {
        1: ("names", STR, LIST),
        2: ("sizeBytes", I64, 0),
    },
    "core.AttachedVolume": {
        1: ("name", STR, KEEP),
        2: ("devicePath", STR, KEEP),
    },
    "core.NodeConfigStatus": {
        1: ("assigned", "core.NodeConfigSource", 0),
        2: ("active", "core.NodeConfigSource", 0),
        3: ("lastKnownGood", "core.NodeConfigSource", 0),
        4: ("error", STR, 0),
    },
    "core.NodeRuntimeHandler": {
        1: ("name", STR, KEEP),
        2: ("features", "core.NodeRuntimeHandlerFeatures", 0),
    },
    "core.NodeFeatures": {
        1: ("supplementalGroupsPolicy", BOOL, KEEP),
    },
    "core.EndpointAddress": {
        1: ("ip", STR, KEEP),
        2: ("targetRef", "core.ObjectReference", 0),
        3: ("hostname", STR, 0),
        4: ("nodeName", STR, KEEP),
    },
    "core.EndpointPort": {
        1: ("name", STR, 0),
        2: ("port", I32, KEEP),
        3: ("protocol", STR, 0),
        4: ("appProtocol", STR, KEEP),
    },
    "core.ContainerState": {
        1: ("waiting", "core.ContainerStateWaiting", 0),
        2: ("running", "core.ContainerStateRunning", 0),
        3: ("terminated", "core.ContainerStateTerminated", 0),
    },
    "core.VolumeMountStatus": {
        1: ("name", STR, KEEP),
        2: ("mountPath", STR, KEEP),
        3: ("readOnly", BOOL, 0),
        4: ("recursiveReadOnly", STR, KEEP),
    },
    "core.ContainerUser": {
        1: ("linux", "core.LinuxContainerUser", 0),
    },
    "core.ResourceStatus": {
        1: ("name", STR, KEEP),
        2: ("resources", "core.ResourceHealth", LIST),
    },
    "core.ContainerExtendedResourceRequest": {
        1: ("containerName", STR, KEEP),
        2: ("resourceName", STR, KEEP),
        3: ("requestName", STR, KEEP),
    },
    "core.ConfigMapNodeConfigSource": {
        1: ("namespace", STR, KEEP),
        2: ("name", STR, KEEP),
        3: ("uid", STR, 0),
        4: ("resourceVersion", STR, 0),
        5: ("kubeletConfigKey", STR, KEEP),
    },
    "core.DaemonEndpoint": {
        1: ("Port", I32, KEEP),
    },
    "core.NodeSwapStatus": {
        1: ("capacity", I64, KEEP),
    },
    "core.NodeRuntimeHandlerFeatures": {
        1: ("recursiveReadOnlyMounts", BOOL, KEEP),
        2: ("userNamespaces", BOOL, KEEP),
    },
    "core.ContainerStateWaiting": {
        1: ("reason", STR, 0),
        2: ("message", STR, 0),
    },
    "core.ContainerStateRunning": {
        1: ("startedAt", TIME, 0),
    },
    "core.ContainerStateTerminated": {
        1: ("exitCode", I32, KEEP),
        2: ("signal", I32, 0),
        3: ("reason", STR, 0),
        4: ("message", STR, 0),
        5: ("startedAt", TIME, 0),
        6: ("finishedAt", TIME, 0),
        7: ("containerID", STR, 0),
    },
    "core.LinuxContainerUser": {
        1: ("uid", I64, KEEP),
        2: ("gid", I64, KEEP),
        3: ("supplementalGroups", I64, LIST),
    },
    "core.ResourceHealth": {
        1: ("resourceID", STR, KEEP),
        2: ("health", STR, 0),
    },
}
