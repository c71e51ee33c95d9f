"""The real kubectl 1.32 against `pinnace apiserver` on a real etcd."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import yaml
from harness import Kubectl

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{tier: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: main
        image: {image}
        env: [{{name: A, value: "1"}}]
"""


@pytest.fixture
def ns(kubectl: Kubectl) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def test_version_discovery_and_default_namespaces(kubectl: Kubectl) -> None:
    assert "Server Version: v1.32" in kubectl("version")
    resources = kubectl("api-resources")
    for line in ("pods  ", "deployments  ", "leases  ", "clusterroles  "):
        assert line.split()[0] in resources
    assert "deploy" in resources and "apps/v1" in resources
    namespaces = kubectl("get", "ns", "-o", "name").split()
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{name}" in namespaces
    table = kubectl("get", "ns", "default")
    assert table.split("\n")[0].split() == ["NAME", "STATUS", "AGE"]


def test_create_generators_send_protobuf(kubectl: Kubectl, ns: str) -> None:
    assert kubectl("create", "deployment", "gen", "--image=nginx:1.27", "--replicas=2",
                   "-n", ns).strip() == "deployment.apps/gen created"
    kubectl("create", "configmap", "cfg", "--from-literal=a=1", "-n", ns)
    kubectl("create", "secret", "generic", "sec", "--from-literal=p=x", "-n", ns)
    kubectl("create", "service", "clusterip", "svc", "--tcp=80:8080", "-n", ns)
    kubectl("create", "serviceaccount", "robot", "-n", ns)
    kubectl("create", "job", "once", "--image=busybox", "-n", ns, "--", "true")
    deployment = json.loads(kubectl("get", "deploy", "gen", "-n", ns, "-o", "json"))
    assert (deployment["kind"], deployment["apiVersion"]) == ("Deployment", "apps/v1")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%",
                                                               "maxUnavailable": "25%"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["imagePullPolicy"]) == ("nginx:1.27", "IfNotPresent")
    secret = json.loads(kubectl("get", "secret", "sec", "-n", ns, "-o", "json"))
    assert secret["data"] == {"p": "eA=="} and secret["type"] == "Opaque"
    header = kubectl("get", "deploy", "-n", ns).splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]


def test_apply_twice_then_change(kubectl: Kubectl, ns: str) -> None:
    manifest = DEPLOYMENT.format(ns=ns, replicas=2, image="busybox:1.36")
    assert kubectl("apply", "-f", "-", input=manifest).strip() == "deployment.apps/web created"
    assert kubectl("apply", "-f", "-", input=manifest).strip() == (
        "deployment.apps/web unchanged")
    changed = DEPLOYMENT.format(ns=ns, replicas=4, image="busybox:1.37")
    assert kubectl("apply", "-f", "-", input=changed).strip() == (
        "deployment.apps/web configured")
    live = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    assert live["spec"]["replicas"] == 4
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"
    assert live["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]


def test_scale_label_annotate_and_patches(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=DEPLOYMENT.format(ns=ns, replicas=1, image="busybox"))
    assert kubectl("scale", "deploy", "web", "--replicas=3", "-n", ns).strip() == (
        "deployment.apps/web scaled")
    kubectl("label", "deploy", "web", "team=a", "-n", ns)
    kubectl("annotate", "deploy", "web", "note=hi", "-n", ns)
    kubectl("patch", "deploy", "web", "-n", ns, "--type=json",
            "-p", '[{"op":"replace","path":"/spec/replicas","value":5}]')
    kubectl("patch", "deploy", "web", "-n", ns, "--type=merge",
            "-p", '{"metadata":{"labels":{"merged":"yes"}}}')
    kubectl("patch", "deploy", "web", "-n", ns, "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}')
    live = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    assert live["spec"]["replicas"] == 5
    assert {"team": "a", "merged": "yes", "tier": "web"}.items() <= live["metadata"][
        "labels"].items()
    assert live["metadata"]["annotations"]["note"] == "hi"
    names = [c["name"] for c in live["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["main", "side"]  # strategic merge: merged by name
    scale = json.loads(kubectl("get", "--raw",
                               f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale"))
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5
    assert scale["status"]["selector"] == "app=web"
    assert live["metadata"]["generation"] == 4  # scale, json patch, strategic patch


def test_server_side_apply_creates_and_updates(kubectl: Kubectl, ns: str) -> None:
    manifest = f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: ssa, namespace: {ns}}}
data: {{a: "1"}}
"""
    assert kubectl("apply", "--server-side", "-f", "-", input=manifest).strip() == (
        "configmap/ssa serverside-applied")
    assert kubectl("apply", "--server-side", "-f", "-",
                   input=manifest.replace('"1"', '"2"')).strip() == (
        "configmap/ssa serverside-applied")
    assert json.loads(kubectl("get", "cm", "ssa", "-n", ns, "-o", "json"))["data"] == {"a": "2"}


def test_errors_render_like_kubernetes(kubectl: Kubectl, ns: str) -> None:
    assert kubectl.fails("get", "pod", "nope", "-n", ns).strip() == (
        'Error from server (NotFound): pods "nope" not found')
    kubectl("create", "configmap", "dup", "-n", ns)
    assert 'configmaps "dup" already exists' in kubectl.fails("create", "configmap", "dup",
                                                              "-n", ns)
    bad = kubectl.fails("run", "Bad_Name", "--image=busybox", "-n", ns)
    # kubectl run names the container after the pod, so both names are reported at once.
    assert 'The Pod "Bad_Name" is invalid: \n* metadata.name: Invalid value: "Bad_Name"' in bad
    assert '* spec.containers[0].name: Invalid value: "Bad_Name"' in bad
    missing = kubectl.fails("create", "-f", "-", input=(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: noimage, namespace: {ns}}}\n"
        "spec: {containers: [{name: c}]}\n"))
    assert "spec.containers[0].image: Required value" in missing
    assert "namespaces \"absent-ns\" not found" in kubectl.fails(
        "create", "configmap", "x", "-n", "absent-ns")


def test_replace_with_stale_resource_version_conflicts(kubectl: Kubectl, ns: str) -> None:
    kubectl("create", "configmap", "cas", "--from-literal=a=1", "-n", ns)
    live = yaml.safe_load(kubectl("get", "cm", "cas", "-n", ns, "-o", "yaml"))
    kubectl("label", "cm", "cas", "bump=1", "-n", ns)
    live["data"]["a"] = "2"
    stderr = kubectl.fails("replace", "-f", "-", input=yaml.safe_dump(live))
    assert "Operation cannot be fulfilled on configmaps \"cas\": the object has been modified" \
        in stderr


def test_delete_unscheduled_pod_and_propagation_policies(kubectl: Kubectl, ns: str) -> None:
    kubectl("run", "p1", "--image=busybox", "-n", ns, "--", "sleep", "60")
    assert kubectl("delete", "pod", "p1", "-n", ns).strip() == 'pod "p1" deleted'
    assert "not found" in kubectl.fails("get", "pod", "p1", "-n", ns)
    kubectl("create", "configmap", "fg", "-n", ns)
    kubectl("delete", "configmap", "fg", "-n", ns, "--cascade=foreground", "--wait=false")
    live = json.loads(kubectl("get", "cm", "fg", "-n", ns, "-o", "json"))
    assert live["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert live["metadata"]["deletionTimestamp"]
    # Removing the finalizer completes the deletion (the garbage collector's job later).
    kubectl("patch", "cm", "fg", "-n", ns, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}')
    assert "not found" in kubectl.fails("get", "cm", "fg", "-n", ns)


def test_get_watch_sees_changes(kubectl: Kubectl, apiserver: object, ns: str) -> None:
    kubectl("create", "configmap", "w1", "-n", ns)
    watcher = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
         str(kubectl.cache_dir), "get", "cm", "-n", ns, "-w", "--no-headers"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        kubectl("create", "configmap", "w2", "-n", ns)
        time.sleep(1.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert names[:1] == ["w1"] and "w2" in names


def test_describe_shows_events_and_wide_columns(kubectl: Kubectl, ns: str) -> None:
    kubectl("run", "d1", "--image=busybox", "-n", ns, "--", "sleep", "60")
    uid = json.loads(kubectl("get", "pod", "d1", "-n", ns, "-o", "json"))["metadata"]["uid"]
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "d1.test", "namespace": ns},
             "involvedObject": {"kind": "Pod", "name": "d1", "namespace": ns, "uid": uid,
                                "apiVersion": "v1"},
             "reason": "Tested", "message": "an event for describe", "type": "Normal",
             "count": 1, "source": {"component": "pytest"},
             "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
    kubectl("create", "-f", "-", input=json.dumps(event))
    described = kubectl("describe", "pod", "d1", "-n", ns)
    assert "Name:             d1" in described
    assert "Tested" in described and "an event for describe" in described
    wide = kubectl("get", "pod", "d1", "-n", ns, "-o", "wide").splitlines()[0].split()
    assert wide[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NODE" in wide and "IP" in wide


def test_delete_cascade_orphan_and_background(kubectl: Kubectl, ns: str) -> None:
    for name in ("orphaned", "background"):
        kubectl("create", "configmap", name, "-n", ns)
    kubectl("delete", "configmap", "orphaned", "-n", ns, "--cascade=orphan", "--wait=false")
    live = json.loads(kubectl("get", "cm", "orphaned", "-n", ns, "-o", "json"))
    assert live["metadata"]["finalizers"] == ["orphan"]  # the garbage collector's to finish
    assert kubectl("delete", "configmap", "background", "-n", ns,
                   "--cascade=background").strip() == 'configmap "background" deleted'
    assert "not found" in kubectl.fails("get", "cm", "background", "-n", ns)
