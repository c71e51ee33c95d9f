"""fieldValidation: unknown and duplicate fields found by the schema tables."""

import copy
import json
from typing import Any

import pytest

from controlplane.api.errors import FIELD_NOT_SUPPORTED, BadRequest, Invalid
from controlplane.api.protobuf.schema import SCALARS, SPECIALS
from controlplane.api.strict import check, message_for, strict_errors, unknown_fields
from controlplane.api.strict.fieldvalidation import KINDS, MESSAGES

TS = "2025-01-02T03:04:05Z"
META: dict[str, Any] = {
    "name": "web", "namespace": "default", "uid": "0b6f3c1e-1111-2222-3333-444455556666",
    "resourceVersion": "42", "generation": 3, "creationTimestamp": TS,
    "labels": {"app": "web", "app.kubernetes.io/name": "web"},
    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n",
                    "deployment.kubernetes.io/revision": "1"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d",
                         "uid": "u", "controller": True, "blockOwnerDeletion": True}],
    "finalizers": ["example.com/cleanup"],
    "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                       "apiVersion": "apps/v1", "time": TS, "fieldsType": "FieldsV1",
                       "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                    "f:spec": {"f:replicas": {}}}}],
}
CONTAINER: dict[str, Any] = {
    "name": "nginx", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
    "command": ["nginx"], "args": ["-g", "daemon off;"], "workingDir": "/",
    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
    "env": [{"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                       "fieldPath": "metadata.name"}}},
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
    "resources": {"limits": {"cpu": "500m", "memory": "128Mi", "example.com/gpu": "1"},
                  "requests": {"cpu": "100m"}},
    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
                      "initialDelaySeconds": 3, "periodSeconds": 10},
    "readinessProbe": {"tcpSocket": {"port": "http"}, "timeoutSeconds": 1},
    "startupProbe": {"exec": {"command": ["true"]}, "failureThreshold": 30},
    "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"}},
    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
}
POD_SPEC: dict[str, Any] = {
    "containers": [CONTAINER],
    "initContainers": [{"name": "init", "image": "busybox", "restartPolicy": "Always"}],
    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a",
                                                                         "path": "a.txt"}]}},
                {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {
                    "path": "token", "expirationSeconds": 3607}}]}}],
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
    "nodeSelector": {"kubernetes.io/os": "linux", "disk": "ssd"},
    "serviceAccountName": "default", "serviceAccount": "default",
    "securityContext": {"fsGroup": 2000}, "schedulerName": "default-scheduler",
    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                     "effect": "NoExecute", "tolerationSeconds": 300}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["a"]}]}]}},
                 "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                     "weight": 100, "podAffinityTerm": {
                         "labelSelector": {"matchLabels": {"app": "web"}},
                         "topologyKey": "kubernetes.io/hostname"}}]}},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app": "web"}}}],
    "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": META,
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "strategy": {"type": "RollingUpdate",
                          "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
             "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
             "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"x": "y"}},
                          "spec": POD_SPEC}},
    "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
               "readyReplicas": 2, "availableReplicas": 2,
               "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicas",
                               "message": "ok", "lastUpdateTime": TS,
                               "lastTransitionTime": TS}]},
}
POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod", "metadata": META,
    "spec": {**POD_SPEC, "nodeName": "node-1"},
    "status": {
        "phase": "Running", "qosClass": "Burstable", "startTime": TS, "hostIP": "10.0.0.5",
        "hostIPs": [{"ip": "10.0.0.5"}], "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}],
        "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                        "lastTransitionTime": TS}],
        "containerStatuses": [{
            "name": "nginx", "ready": True, "started": True, "restartCount": 1,
            "image": "docker.io/library/nginx:1.27", "imageID": "sha256:abc",
            "containerID": "containerd://abc", "state": {"running": {"startedAt": TS}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                         "startedAt": TS, "finishedAt": TS,
                                         "containerID": "containerd://old"}},
            "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            "user": {"linux": {"uid": 0, "gid": 0, "supplementalGroups": [0]}}}],
        "initContainerStatuses": [{"name": "init", "ready": True, "restartCount": 0,
                                   "image": "busybox", "imageID": "",
                                   "state": {"waiting": {"reason": "PodInitializing"}}}],
    },
}
SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"a": "b"}},
    "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
             "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
             "ipFamilyPolicy": "SingleStack", "sessionAffinity": "ClientIP",
             "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
             "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
             "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080,
                        "protocol": "TCP", "appProtocol": "http"}]},
    "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP",
                                             "ports": [{"port": 80, "protocol": "TCP"}]}]}},
}
CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
    "data": {"a.txt": "hello", "SOME_KEY": "v", "weird key with spaces": ""},
    "binaryData": {"bin": "AAE="}, "immutable": False,
}
NODE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"},
                 "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
    "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "providerID": "x://1",
             "taints": [{"key": "node-role.kubernetes.io/control-plane",
                         "effect": "NoSchedule"}], "unschedulable": False},
    "status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "50Gi",
                     "hugepages-2Mi": "0"},
        "allocatable": {"cpu": "4", "memory": "7.5Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": TS,
                        "lastTransitionTime": TS, "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.5"},
                      {"type": "Hostname", "address": "node-1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b",
                     "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                     "containerRuntimeVersion": "containerd://1.7.24",
                     "kubeletVersion": "v1.32.0", "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": "amd64",
                     "swap": {"capacity": 0}},
        "images": [{"names": ["docker.io/library/nginx@sha256:1", "nginx:1.27"],
                    "sizeBytes": 72000000}],
        "runtimeHandlers": [{"name": "runc", "features": {"recursiveReadOnlyMounts": True,
                                                          "userNamespaces": False}}],
        "features": {"supplementalGroupsPolicy": True},
    },
}
LEASE: dict[str, Any] = {
    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
    "metadata": {"name": "node-1", "namespace": "kube-node-lease",
                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node-1",
                                      "uid": "u"}]},
    "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
             "renewTime": "2025-01-02T03:04:05.123456Z", "acquireTime": None,
             "leaseTransitions": 0},
}
ROLE: dict[str, Any] = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "reader", "namespace": "default"},
    "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
              {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"],
               "verbs": ["get"]}],
}
HPA_V2: dict[str, Any] = {
    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
             "minReplicas": 1, "maxReplicas": 5,
             "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                 "type": "Utilization", "averageUtilization": 80}}}],
             "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "policies": [
                 {"type": "Percent", "value": 100, "periodSeconds": 15}]}}},
    "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 10,
                                                                     "averageValue": "10m"}}}],
        "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": TS,
                        "reason": "ReadyForNewScale"}]},
}
OTHERS: list[tuple[str, str, dict[str, Any]]] = [
    ("discovery.k8s.io", "v1", {
        "kind": "EndpointSlice", "metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": True,
                                                                   "serving": True},
                       "nodeName": "node-1", "targetRef": {"kind": "Pod", "name": "web-1"},
                       "hints": {"forZones": [{"name": "a"}]}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    ("events.k8s.io", "v1", {
        "kind": "Event", "metadata": {"name": "e1"}, "eventTime": "2025-01-02T03:04:05.000001Z",
        "reportingController": "kubelet", "reportingInstance": "node-1", "action": "Pulling",
        "reason": "Pulling", "note": "Pulling image", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{nginx}"},
        "series": {"count": 2, "lastObservedTime": "2025-01-02T03:04:05.000001Z"}}),
    ("", "v1", {
        "kind": "Event", "metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod"},
        "reason": "Started", "message": "m", "source": {"component": "kubelet", "host": "n"},
        "firstTimestamp": TS, "lastTimestamp": TS, "count": 1, "type": "Normal",
        "reportingComponent": "kubelet", "reportingInstance": "n"}),
    ("", "v1", {
        "kind": "Endpoints", "metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.244.0.7", "nodeName": "node-1",
                           "targetRef": {"kind": "Pod", "name": "web-1"}}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]}),
    ("", "v1", {"kind": "Binding", "metadata": {"name": "web-1"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}),
    ("policy", "v1", {"kind": "Eviction", "metadata": {"name": "web-1"},
                      "deleteOptions": {"kind": "DeleteOptions", "apiVersion": "v1",
                                        "gracePeriodSeconds": 0, "dryRun": ["All"]}}),
    ("autoscaling", "v1", {"kind": "Scale", "metadata": {"name": "web"},
                           "spec": {"replicas": 3},
                           "status": {"replicas": 2, "selector": "app=web"}}),
    ("", "v1", {"kind": "DeleteOptions", "propagationPolicy": "Foreground",
                "preconditions": {"uid": "u", "resourceVersion": "1"}}),
    ("apps", "v1", {"kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": POD_SPEC},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
        "status": {"currentNumberScheduled": 1, "numberMisscheduled": 0,
                   "desiredNumberScheduled": 1, "numberReady": 1}}),
    ("apps", "v1", {"kind": "ReplicaSet", "metadata": {"name": "r"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": POD_SPEC}},
        "status": {"replicas": 1, "fullyLabeledReplicas": 1}}),
    ("batch", "v1", {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": POD_SPEC},
                                                            "backoffLimit": 2}}}}),
    ("autoscaling", "v1", {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                    "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}}),
    ("", "v1", {"kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque",
                "data": {"k": "dg=="}, "stringData": {"any key": "v"}}),
    ("", "v1", {"kind": "Namespace", "metadata": {"name": "n"}, "spec": {"finalizers": ["k"]},
                "status": {"phase": "Active"}}),
    ("", "v1", {"kind": "ServiceAccount", "metadata": {"name": "default"},
                "secrets": [{"name": "t"}], "automountServiceAccountToken": False}),
]


def gvk(obj: dict[str, Any]) -> tuple[str, str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version, obj["kind"]


@pytest.mark.parametrize("obj", [DEPLOYMENT, POD, SERVICE, CONFIGMAP, NODE, LEASE, ROLE, HPA_V2],
                         ids=lambda o: o["kind"])
def test_realistic_objects_have_no_unknown_fields(obj: dict[str, Any]) -> None:
    assert unknown_fields(*gvk(obj), obj) == []
    assert strict_errors(*gvk(obj), json.dumps(obj)) == []


@pytest.mark.parametrize(("group", "version", "obj"), OTHERS,
                         ids=[f"{g or 'core'}/{v}/{o['kind']}" for g, v, o in OTHERS])
def test_every_served_kind_is_known(group: str, version: str, obj: dict[str, Any]) -> None:
    assert message_for(group, version, obj["kind"]) is not None
    assert unknown_fields(group, version, obj["kind"], obj) == []
    obj = {**obj, "bogus": 1}
    assert unknown_fields(group, version, obj["kind"], obj) == ["bogus"]


def test_schema_tables_are_closed() -> None:
    for name, message in MESSAGES.items():
        for json_name, typ, _ in message.values():
            assert typ in SCALARS or typ in SPECIALS or typ in MESSAGES, (name, json_name, typ)
    assert all(root in MESSAGES for root in KINDS.values())


def test_typos_are_found_at_every_depth_in_document_order() -> None:
    obj = copy.deepcopy(DEPLOYMENT)
    obj["metadata"]["labelz"] = {"a": "b"}
    obj["spec"]["replicass"] = 3
    obj["spec"]["template"]["spec"]["containers"].append({"name": "side", "imagee": "busybox"})
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerport"] = 81
    obj["spec"]["template"]["spec"]["volumes"][1]["configMap"]["items"][0]["mode "] = 1
    obj["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["weight"] = 1
    obj["status"]["conditions"][0]["lastProbeTime"] = TS
    obj["Spec"] = {}
    assert unknown_fields("apps", "v1", "Deployment", obj) == [
        "metadata.labelz",
        "spec.template.spec.containers[0].ports[0].containerport",
        "spec.template.spec.containers[1].imagee",
        "spec.template.spec.volumes[1].configMap.items[0].mode ",
        "spec.template.spec.affinity.nodeAffinity.weight",
        "spec.replicass",
        "status.conditions[0].lastProbeTime",
        "Spec",
    ]


def test_inline_structs_and_type_meta() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": {
        "volumes": [{"name": "v", "hostPath": {"path": "/x"}, "hostpath": {}}],
        "containers": [{"name": "c", "livenessProbe": {"grpc": {"port": 1}, "http": {}}}],
        "ephemeralContainers": [{"name": "e", "image": "i", "targetContainerName": "c",
                                 "kind": "x"}]},
        "metadata": {"kind": "Pod"}}
    assert unknown_fields("", "v1", "Pod", pod) == [
        "spec.volumes[0].hostpath", "spec.containers[0].livenessProbe.http",
        "spec.ephemeralContainers[0].kind", "metadata.kind"]
    eviction = {"deleteOptions": {"kind": "DeleteOptions", "apiVersion": "policy/v1",
                                  "gracePeriod": 1}}
    assert unknown_fields("policy", "v1", "Eviction", eviction) == ["deleteOptions.gracePeriod"]


def test_maps_and_free_form_fields_accept_any_key() -> None:
    obj = {"metadata": {"labels": {"spec": "x", "a/b": "c"}, "annotations": {"replicas": "1"},
                        "managedFields": [{"fieldsV1": {"f:anything": {"k:{\"x\":1}": {}}}}]},
           "spec": {"selector": {"matchLabels": {"whatever": "x"}},
                    "template": {"spec": {"nodeSelector": {"image": "x"}, "containers": [
                        {"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                        "overhead": {"cpu": "1"}}}}}
    assert unknown_fields("apps", "v1", "Deployment", obj) == []
    node = {"status": {"capacity": {"anything": "1"}, "allocatable": {"x": "1"}}}
    assert unknown_fields("", "v1", "Node", node) == []


def test_unknown_values_are_not_looked_into_and_mismatched_types_are_skipped() -> None:
    obj = {"spec": {"bogus": {"replicas": 1, "more": {"x": 1}}, "template": "not an object",
                    "selector": ["wrong"]}}
    assert unknown_fields("apps", "v1", "Deployment", obj) == ["spec.bogus"]


def test_unknown_kinds_have_no_unknown_fields() -> None:
    assert unknown_fields("example.com", "v1", "Widget", {"spec": {"x": 1}}) == []
    assert unknown_fields("apps", "v2", "Deployment", {"spec": {"x": 1}}) == []
    assert check("Strict", "example.com", "v1", "Widget", {"anything": 1}) == []


def test_duplicates_from_the_raw_body() -> None:
    body = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"b",'
            '"labels":{"x":"1","x":"2"}},"bogus":1,"bogus":2,"data":{"k":"v"},"data":{}}')
    assert strict_errors("", "v1", "ConfigMap", body) == [
        'duplicate field "metadata.name"', 'duplicate field "metadata.labels.x"',
        'unknown field "bogus"', 'duplicate field "data"']
    assert strict_errors("", "v1", "ConfigMap", body.encode()) == strict_errors(
        "", "v1", "ConfigMap", body)
    assert strict_errors("", "v1", "ConfigMap", b"{not json") == []


def test_paths_are_go_quoted_and_errors_capped_at_100() -> None:
    assert strict_errors("", "v1", "ConfigMap", {"a\"b\n": 1}) == ['unknown field "a\\"b\\n"']
    many = {f"f{i}": i for i in range(150)}
    errors = strict_errors("", "v1", "ConfigMap", many)
    assert len(errors) == 100 and errors[-1] == 'unknown field "f99"'


def test_strict_rejects_with_kube_apiservers_message() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "spec": {"replicass": 2, "template": {"spec": {"containers": [{"imagee": "x"}]}}}}
    with pytest.raises(BadRequest) as err:
        check("Strict", "apps", "v1", "Deployment", obj)
    assert err.value.code == 400
    assert err.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.replicass", '
        'unknown field "spec.template.spec.containers[0].imagee"')
    assert check("Strict", "apps", "v1", "Deployment", DEPLOYMENT) == []


def test_warn_and_absent_return_warnings_ignore_returns_none() -> None:
    obj = {"kind": "ConfigMap", "metadata": {"nam": "x"}, "dat": {}}
    warnings = ['unknown field "metadata.nam"', 'unknown field "dat"']
    assert check("Warn", "", "v1", "ConfigMap", obj) == warnings
    assert check("", "", "v1", "ConfigMap", obj) == warnings  # Kubernetes' default is Warn
    assert check("Ignore", "", "v1", "ConfigMap", obj) == []
    assert check("Warn", "", "v1", "ConfigMap", CONFIGMAP) == []


@pytest.mark.parametrize("options", ["CreateOptions", "UpdateOptions", "PatchOptions"])
def test_unsupported_directive_is_invalid(options: str) -> None:
    with pytest.raises(Invalid) as err:
        check("strict", "", "v1", "ConfigMap", {}, options=options)
    assert err.value.code == 422
    assert err.value.message == (
        f'{options}.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": '
        'supported values: "", "Ignore", "Strict", "Warn"')
    cause = err.value.causes[0]
    assert (cause.reason, cause.field) == (FIELD_NOT_SUPPORTED, "fieldValidation")
    assert err.value.status()["details"]["kind"] == options
