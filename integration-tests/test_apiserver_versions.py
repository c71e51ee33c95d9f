"""One object through several API versions, with the real kubectl 1.32 against `pinnace
apiserver` on a real etcd: core/v1 and events.k8s.io/v1 Events share one stored object, as do
autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers (uid, resourceVersion, watches)."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest
import yaml
from harness import Kubectl

from pinnace.local.etcd import Etcd

Object = dict[str, Any]
NEW_EVENTS = "events.v1.events.k8s.io"

CORE_EVENT = """apiVersion: v1
kind: Event
metadata: {{name: {name}, namespace: {ns}}}
involvedObject: {{kind: Pod, namespace: {ns}, name: {pod}, uid: "{uid}", apiVersion: v1}}
reason: {reason}
message: "{reason} by the test"
type: Normal
source: {{component: kubelet, host: node-1}}
firstTimestamp: "2024-05-01T10:00:00Z"
lastTimestamp: "2024-05-01T10:01:00Z"
count: 2
"""

NEW_EVENT = """apiVersion: events.k8s.io/v1
kind: Event
metadata: {{name: {name}, namespace: {ns}}}
eventTime: "2024-05-01T10:02:00.000000Z"
reportingController: example.com/tester
reportingInstance: tester-1
action: Testing
reason: {reason}
regarding: {{kind: Pod, namespace: {ns}, name: {pod}, uid: "{uid}", apiVersion: v1}}
note: "{reason} through events.k8s.io"
type: Warning
"""


@pytest.fixture
def ns(kubectl: Kubectl) -> str:
    name = f"v-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def get(kubectl: Kubectl, *args: str) -> Object:
    result: Object = yaml.safe_load(kubectl("get", *args, "-o", "yaml"))
    return result


def raw_watch(kubectl: Kubectl, path: str) -> subprocess.Popen[str]:
    """`kubectl get --raw` of a watch that ends by itself (timeoutSeconds in `path`)."""
    return subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
         str(kubectl.cache_dir), "get", "--raw", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def watch_events(watcher: subprocess.Popen[str]) -> list[Object]:
    out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_core_event_reads_as_events_k8s_io(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "-f", "-", input=CORE_EVENT.format(
        name="web.1", ns=ns, pod="web", uid="u-web", reason="Pulled"))
    core = get(kubectl, "events", "web.1", "-n", ns)
    served = get(kubectl, NEW_EVENTS, "web.1", "-n", ns)
    assert (served["apiVersion"], served["kind"]) == ("events.k8s.io/v1", "Event")
    for key in ("uid", "resourceVersion", "creationTimestamp"):
        assert served["metadata"][key] == core["metadata"][key]
    assert served["regarding"] == {"kind": "Pod", "namespace": ns, "name": "web",
                                   "uid": "u-web", "apiVersion": "v1"}
    assert served["note"] == "Pulled by the test"
    assert served["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert served["deprecatedCount"] == 2
    assert served["deprecatedFirstTimestamp"] == "2024-05-01T10:00:00Z"
    assert "involvedObject" not in served and "message" not in served
    listed = get(kubectl, NEW_EVENTS, "-n", ns)
    assert [e["metadata"]["name"] for e in listed["items"]] == ["web.1"]
    table = kubectl("get", NEW_EVENTS, "-n", ns).splitlines()
    assert table[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert table[1].split()[1:4] == ["Normal", "Pulled", "pod/web"]


def test_an_events_k8s_io_event_reads_as_core(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "-f", "-", input=NEW_EVENT.format(
        name="sched.1", ns=ns, pod="web", uid="u-web", reason="Scheduled"))
    core = get(kubectl, "events", "sched.1", "-n", ns)
    assert (core["apiVersion"], core["involvedObject"]["name"]) == ("v1", "web")
    assert core["message"] == "Scheduled through events.k8s.io"
    assert core["reportingComponent"] == "example.com/tester"
    assert core["reportingInstance"] == "tester-1"
    kubectl("patch", NEW_EVENTS, "sched.1", "-n", ns, "--type=merge",
            "-p", '{"note": "patched", "deprecatedCount": 5}')
    core = get(kubectl, "events", "sched.1", "-n", ns)
    assert (core["message"], core["count"]) == ("patched", 5)
    served = get(kubectl, NEW_EVENTS, "sched.1", "-n", ns)
    assert served["metadata"]["resourceVersion"] == core["metadata"]["resourceVersion"]


def test_events_k8s_io_field_selectors(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "-f", "-", input=CORE_EVENT.format(
        name="a.1", ns=ns, pod="web", uid="u-web", reason="Pulled"))
    kubectl("create", "-f", "-", input=NEW_EVENT.format(
        name="b.1", ns=ns, pod="db", uid="u-db", reason="Scheduled"))

    def names(*selector: str) -> list[str]:
        return kubectl("get", NEW_EVENTS, "-n", ns, "-o", "name",
                       "--field-selector", ",".join(selector)).split()

    assert names("regarding.name=web") == ["event.events.k8s.io/a.1"]
    assert names("reportingController=example.com/tester") == ["event.events.k8s.io/b.1"]
    assert names("regarding.kind=Pod", "type=Warning") == ["event.events.k8s.io/b.1"]
    error = kubectl.fails("get", NEW_EVENTS, "-n", ns, "--field-selector",
                          "involvedObject.name=web")
    assert "field label not supported: involvedObject.name" in error


def test_watches_see_the_other_versions_writes(kubectl: Kubectl, ns: str) -> None:
    start = get(kubectl, NEW_EVENTS, "-n", ns)["metadata"]["resourceVersion"]
    new_watch = raw_watch(kubectl, f"/apis/events.k8s.io/v1/namespaces/{ns}/events"
                                   f"?watch=1&resourceVersion={start}&timeoutSeconds=4")
    core_watch = raw_watch(kubectl, f"/api/v1/namespaces/{ns}/events"
                                    f"?watch=1&resourceVersion={start}&timeoutSeconds=4")
    kubectl("create", "-f", "-", input=CORE_EVENT.format(
        name="core.1", ns=ns, pod="web", uid="u-web", reason="Pulled"))
    kubectl("create", "-f", "-", input=NEW_EVENT.format(
        name="new.1", ns=ns, pod="web", uid="u-web", reason="Scheduled"))
    seen_new, seen_core = watch_events(new_watch), watch_events(core_watch)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen_new] == [
        ("ADDED", "core.1"), ("ADDED", "new.1")]
    assert [e["object"]["apiVersion"] for e in seen_new] == ["events.k8s.io/v1"] * 2
    assert seen_new[0]["object"]["note"] == "Pulled by the test"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in seen_core] == [
        ("ADDED", "core.1"), ("ADDED", "new.1")]
    assert seen_core[1]["object"]["message"] == "Scheduled through events.k8s.io"
    for a, b in zip(seen_new, seen_core, strict=True):
        assert a["object"]["metadata"] == b["object"]["metadata"]


def test_describe_pod_shows_events_of_both_versions(kubectl: Kubectl, ns: str) -> None:
    kubectl("run", "web", "--image=busybox", "-n", ns)
    uid = get(kubectl, "pod", "web", "-n", ns)["metadata"]["uid"]
    kubectl("create", "-f", "-", input=CORE_EVENT.format(
        name="web.a", ns=ns, pod="web", uid=uid, reason="Pulled"))
    kubectl("create", "-f", "-", input=NEW_EVENT.format(
        name="web.b", ns=ns, pod="web", uid=uid, reason="BackOff"))
    kubectl("create", "-f", "-", input=CORE_EVENT.format(
        name="other.a", ns=ns, pod="other", uid="u-other", reason="Killing"))
    described = kubectl("describe", "pod", "web", "-n", ns)
    events = described.split("Events:", 1)[1]
    assert "Pulled by the test" in events and "BackOff through events.k8s.io" in events
    assert "Killing" not in events


def test_autoscale_posts_v1_and_reads_as_v2(kubectl: Kubectl, ns: str, etcd: Etcd) -> None:
    kubectl("create", "deployment", "web", "--image=busybox", "-n", ns)
    assert kubectl("autoscale", "deployment", "web", "--max=3", "--cpu-percent=70",
                   "-n", ns).strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    v2 = get(kubectl, "hpa", "web", "-n", ns)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["scaleTargetRef"] == {"kind": "Deployment", "name": "web",
                                            "apiVersion": "apps/v1"}
    assert (v2["spec"]["minReplicas"], v2["spec"]["maxReplicas"]) == (1, 3)
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    v1 = get(kubectl, "horizontalpodautoscalers.v1.autoscaling", "web", "-n", ns)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    for key in ("uid", "resourceVersion"):
        assert v1["metadata"][key] == v2["metadata"][key]
    row = kubectl("get", "hpa", "web", "-n", ns, "--no-headers").split()
    assert row[:3] == ["web", "Deployment/web", "cpu:"] and row[4:6] == ["1", "3"]


def test_a_v1_client_keeps_v2_metrics(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "-f", "-", input=f"""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: {ns}}}
spec:
  scaleTargetRef: {{kind: Deployment, name: web, apiVersion: apps/v1}}
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {{name: memory, target: {{type: AverageValue, averageValue: 100Mi}}}}
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 60}}}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 120}}
""")
    v1 = get(kubectl, "horizontalpodautoscalers.v1.autoscaling", "web", "-n", ns)
    annotations = v1["metadata"]["annotations"]
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}]
    assert json.loads(annotations["autoscaling.alpha.kubernetes.io/behavior"])["ScaleDown"][
        "StabilizationWindowSeconds"] == 120
    kubectl("patch", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", ns,
            "--type=merge", "-p", '{"spec": {"targetCPUUtilizationPercentage": 50}}')
    v2 = get(kubectl, "hpa", "web", "-n", ns)
    assert [m["resource"]["name"] for m in v2["spec"]["metrics"]] == ["memory", "cpu"]
    assert v2["spec"]["metrics"][1]["resource"]["target"]["averageUtilization"] == 50
    assert v2["spec"]["behavior"]["scaleDown"] == {  # with the defaults it left out
        "stabilizationWindowSeconds": 120, "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert "annotations" not in v2["metadata"]


def test_apply_and_patches_through_both_versions(kubectl: Kubectl, ns: str) -> None:
    manifest = f"""apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: web, namespace: {ns}}}
spec:
  scaleTargetRef: {{kind: Deployment, name: web, apiVersion: apps/v1}}
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 60}}}}
"""
    kubectl("apply", "--server-side", "-f", "-", input=manifest)
    kubectl("patch", "horizontalpodautoscalers.v1.autoscaling", "web", "-n", ns,
            "--type=merge", "-p", '{"spec": {"maxReplicas": 6}}')
    v1 = get(kubectl, "horizontalpodautoscalers.v1.autoscaling", "web", "-n", ns,
             "--show-managed-fields")
    assert {e["apiVersion"] for e in v1["metadata"]["managedFields"]} == {
        "autoscaling/v2", "autoscaling/v1"}
    changed = manifest.replace("averageUtilization: 60", "averageUtilization: 65")
    conflict = kubectl.fails("apply", "--server-side", "-f", "-", input=changed)
    assert 'conflict with "kubectl-patch" using autoscaling/v1: .spec.maxReplicas' in conflict
    kubectl("apply", "--server-side", "-f", "-",
            input=changed.replace("maxReplicas: 4", "maxReplicas: 6"))  # co-owned now
    v2 = get(kubectl, "hpa", "web", "-n", ns)
    assert v2["spec"]["maxReplicas"] == 6
    assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 65
    kubectl("apply", "-f", "-", input=NEW_EVENT.format(
        name="e.1", ns=ns, pod="web", uid="u", reason="Applied"))
    kubectl("annotate", "events", "e.1", "-n", ns, "seen=yes")
    assert kubectl("apply", "-f", "-", input=NEW_EVENT.format(
        name="e.1", ns=ns, pod="web", uid="u", reason="Applied")).strip() == (
        "event.events.k8s.io/e.1 unchanged")
