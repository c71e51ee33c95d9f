"""Server-side Table printers: headers, realistic rows, includeObject, and HumanDuration.

Expected cells follow kube-apiserver's printers (pkg/printers/internalversion) and
apimachinery's duration.HumanDuration; the clock is pinned so AGE cells are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.apiserver.printers import column_definitions, human_duration, table
from controlplane.apiserver.printers.common import parse_time

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-11-25T08:00:00Z"  # 4h before NOW


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "resourceVersion": "7", "creationTimestamp": CREATED, **extra}


def cells(resource: str, group: str, obj: dict[str, Any], **kwargs: Any) -> list[Any]:
    result = table(resource, group, [obj], now=NOW, **kwargs)
    row: list[Any] = result["rows"][0]["cells"]
    return row


def headers(resource: str, group: str = "", *, wide: bool = False) -> list[str]:
    """Column names as kubectl prints them (upper case; priority 1 only with -o wide)."""
    return [
        str(c["name"]).upper()
        for c in column_definitions(resource, group)
        if wide or c["priority"] == 0
    ]


# --- HumanDuration and timestamps --------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(seconds=-1.5), "0s"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=60), "60s"),
        (timedelta(seconds=119.9), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=2, seconds=10), "2m10s"),
        (timedelta(minutes=2, seconds=10.9), "2m10s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10), "10m"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=5), "3h5m"),
        (timedelta(hours=7, minutes=59), "7h59m"),
        (timedelta(hours=8), "8h"),
        (timedelta(hours=8, minutes=59), "8h"),
        (timedelta(hours=47, minutes=59), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8), "8d"),
        (timedelta(days=9), "9d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=775), "2y45d"),
        (timedelta(days=365 * 8 - 1), "7y364d"),
        (timedelta(days=365 * 8), "8y"),
        (timedelta(days=365 * 10 + 100), "10y"),
    ],
)
def test_human_duration(delta: timedelta, expected: str) -> None:
    assert human_duration(delta) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-25T08:00:00Z", datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T08:00:00+00:00", datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T10:00:00+02:00", datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T08:00:00.123456789Z", datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-25T08:00:00.5Z", datetime(2026, 11, 25, 8, 0, 0, 500000, tzinfo=UTC)),
        ("yesterday", None),
        ("2026-13-40T08:00:00Z", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_time(raw: object, expected: datetime | None) -> None:
    assert parse_time(raw) == expected


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (None, "<unknown>"),
        ("not a time", "<unknown>"),
        ((NOW + timedelta(seconds=10)).isoformat(), "<invalid>"),
        ((NOW + timedelta(milliseconds=500)).isoformat(), "0s"),
        ("2026-11-25T13:55:00+02:00", "5m"),
        ("2026-11-25T11:59:55.250Z", "4s"),
    ],
)
def test_age_cell(created: str | None, expected: str) -> None:
    metadata: dict[str, Any] = {"name": "x"}
    if created is not None:
        metadata["creationTimestamp"] = created
    assert cells("configmaps", "", {"metadata": metadata})[-1] == expected


# --- Table envelope and includeObject ----------------------------------------------------------


def test_table_envelope_and_metadata_object() -> None:
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("cfg"), "data": {"a": "1"}}
    result = table("configmaps", "", [cm], resource_version="112", now=NOW)
    assert result["kind"] == "Table"
    assert result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {"resourceVersion": "112"}
    assert result["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": result["columnDefinitions"][0]["description"], "priority": 0,
    }
    assert result["rows"] == [{
        "cells": ["cfg", 1, "4h"],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": meta("cfg")},
    }]


def test_include_object_none_and_object() -> None:
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("cfg")}
    assert "object" not in table("configmaps", "", [cm], include_object="None")["rows"][0]
    assert table("configmaps", "", [cm], include_object="Object")["rows"][0]["object"] == cm


def test_include_object_rejects_unknown_value() -> None:
    with pytest.raises(ValueError):
        table("pods", "", [], include_object="Everything")


def test_continue_token_and_empty_list() -> None:
    result = table("pods", "", [], resource_version="9", continue_token="abc")
    assert result["metadata"] == {"resourceVersion": "9", "continue": "abc"}
    assert result["rows"] == []
    assert [c["name"] for c in result["columnDefinitions"]][:2] == ["Name", "Ready"]


def test_column_definitions_match_table_columns() -> None:
    assert column_definitions("pods", "") == table("pods", "", [])["columnDefinitions"]
    for column in column_definitions("deployments", "apps"):
        assert set(column) == {"name", "type", "format", "description", "priority"}


REGISTERED = [
    ("pods", ""), ("nodes", ""), ("namespaces", ""), ("services", ""), ("endpoints", ""),
    ("configmaps", ""), ("secrets", ""), ("serviceaccounts", ""), ("events", ""),
    ("replicationcontrollers", ""), ("events", "events.k8s.io"), ("deployments", "apps"),
    ("replicasets", "apps"), ("daemonsets", "apps"), ("statefulsets", "apps"),
    ("jobs", "batch"), ("cronjobs", "batch"), ("leases", "coordination.k8s.io"),
    ("endpointslices", "discovery.k8s.io"), ("horizontalpodautoscalers", "autoscaling"),
    ("rolebindings", "rbac.authorization.k8s.io"),
    ("clusterrolebindings", "rbac.authorization.k8s.io"),
    ("roles", "rbac.authorization.k8s.io"), ("widgets", "example.com"),
]


@pytest.mark.parametrize(("resource", "group"), REGISTERED)
def test_every_printer_fills_every_column_even_for_an_empty_object(
    resource: str, group: str
) -> None:
    result = table(resource, group, [{}], now=NOW)
    assert len(result["rows"][0]["cells"]) == len(result["columnDefinitions"])
    assert result["rows"][0]["object"]["metadata"] == {}


# --- pods --------------------------------------------------------------------------------------


def pod(status: dict[str, Any], *, spec: dict[str, Any] | None = None,
        **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": meta("web-1", **metadata),
        "spec": spec or {"containers": [{"name": "web", "image": "nginx"}], "nodeName": "node-1"},
        "status": status,
    }


def running(name: str = "web", *, restarts: int = 0, ready: bool = True) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}}


def waiting(reason: str, name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "state": {"waiting": {"reason": reason}}, **extra}


def terminated(name: str = "web", **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "state": {"terminated": state}}


def test_pod_headers() -> None:
    assert headers("pods") == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert headers("pods", wide=True)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]


def test_running_pod_row() -> None:
    status = {"phase": "Running", "podIP": "10.244.0.7", "podIPs": [{"ip": "10.244.0.7"}],
              "containerStatuses": [running()]}
    assert cells("pods", "", pod(status)) == [
        "web-1", "1/1", "Running", "0", "4h", "10.244.0.7", "node-1", "<none>", "<none>",
    ]


def test_crashloop_pod_shows_restarts_with_last_restart_age() -> None:
    container = waiting("CrashLoopBackOff", restartCount=3,
                        lastState={"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}})
    row = cells("pods", "", pod({"phase": "Running", "containerStatuses": [container]}))
    assert row[1:4] == ["0/1", "CrashLoopBackOff", "3 (2m ago)"]


def test_restarts_without_finish_time_are_a_bare_count() -> None:
    row = cells("pods", "", pod({"phase": "Running", "containerStatuses": [running(restarts=3)]}))
    assert row[3] == "3"


INIT_SPEC = {
    "initContainers": [{"name": "init", "image": "busybox"}],
    "containers": [{"name": "web", "image": "nginx"}],
}


@pytest.mark.parametrize(
    ("init_status", "expected"),
    [
        ({"name": "init", "state": {"running": {}}}, "Init:0/1"),
        (waiting("PodInitializing", name="init"), "Init:0/1"),
        (waiting("CrashLoopBackOff", name="init"), "Init:CrashLoopBackOff"),
        (terminated("init", exitCode=1, reason="Error"), "Init:Error"),
        (terminated("init", exitCode=137, signal=9), "Init:Signal:9"),
        (terminated("init", exitCode=2), "Init:ExitCode:2"),
    ],
)
def test_init_container_status(init_status: dict[str, Any], expected: str) -> None:
    status = {"phase": "Pending", "initContainerStatuses": [init_status],
              "containerStatuses": [waiting("PodInitializing")]}
    assert cells("pods", "", pod(status, spec=INIT_SPEC))[1:3] == ["0/1", expected]


def test_second_of_two_init_containers() -> None:
    spec = {**INIT_SPEC, "initContainers": [{"name": "a"}, {"name": "b"}]}
    status = {"phase": "Pending", "initContainerStatuses": [
        terminated("a", exitCode=0, reason="Completed"), {"name": "b", "state": {"running": {}}},
    ]}
    assert cells("pods", "", pod(status, spec=spec))[2] == "Init:1/2"


def test_pod_initializing_after_init_containers_finish() -> None:
    status = {"phase": "Pending",
              "initContainerStatuses": [terminated("init", exitCode=0, reason="Completed")],
              "containerStatuses": [waiting("PodInitializing")]}
    assert cells("pods", "", pod(status, spec=INIT_SPEC))[2] == "PodInitializing"


@pytest.mark.parametrize(
    ("phase", "container", "expected"),
    [
        ("Pending", waiting("ContainerCreating"), "ContainerCreating"),
        ("Pending", waiting("ErrImagePull"), "ErrImagePull"),
        ("Pending", waiting("ImagePullBackOff"), "ImagePullBackOff"),
        ("Succeeded", terminated(exitCode=0, reason="Completed"), "Completed"),
        ("Failed", terminated(exitCode=1, reason="Error"), "Error"),
        ("Failed", terminated(exitCode=137, reason="OOMKilled"), "OOMKilled"),
        ("Failed", terminated(exitCode=137, signal=9), "Signal:9"),
        ("Failed", terminated(exitCode=3), "ExitCode:3"),
    ],
)
def test_container_state_reason(phase: str, container: dict[str, Any], expected: str) -> None:
    row = cells("pods", "", pod({"phase": phase, "containerStatuses": [container]}))
    assert row[1:3] == ["0/1", expected]


def test_pending_pod_without_statuses() -> None:
    assert cells("pods", "", pod({"phase": "Pending"}))[1:4] == ["0/1", "Pending", "0"]


def test_first_container_reason_wins() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b"}]}
    status = {"phase": "Running",
              "containerStatuses": [waiting("ImagePullBackOff", name="a"), running("b")]}
    assert cells("pods", "", pod(status, spec=spec))[1:3] == ["1/2", "ImagePullBackOff"]


@pytest.mark.parametrize(("ready", "expected"), [("True", "Running"), ("False", "NotReady")])
def test_completed_container_beside_a_running_one(ready: str, expected: str) -> None:
    spec = {"containers": [{"name": "job"}, {"name": "sidecar"}]}
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
              "containerStatuses": [terminated("job", exitCode=0, reason="Completed"),
                                    running("sidecar")]}
    assert cells("pods", "", pod(status, spec=spec))[1:3] == ["1/2", expected]


def test_terminating_pod() -> None:
    status = {"phase": "Running", "containerStatuses": [running()]}
    row = cells("pods", "", pod(status, deletionTimestamp=ago(seconds=5)))
    assert row[1:3] == ["1/1", "Terminating"]


def test_terminating_does_not_hide_a_finished_pod() -> None:
    status = {"phase": "Succeeded",
              "containerStatuses": [terminated(exitCode=0, reason="Completed")]}
    assert cells("pods", "", pod(status, deletionTimestamp=ago(seconds=5)))[2] == "Completed"


def test_node_lost_pod() -> None:
    status = {"phase": "Running", "reason": "NodeLost", "containerStatuses": [running()]}
    assert cells("pods", "", pod(status))[2] == "NodeLost"
    assert cells("pods", "", pod(status, deletionTimestamp=ago(seconds=5)))[2] == "Unknown"


def test_scheduling_gated_and_evicted_pods() -> None:
    gated = {"phase": "Pending",
             "conditions": [{"type": "PodScheduled", "status": "False",
                             "reason": "SchedulingGated"}]}
    assert cells("pods", "", pod(gated))[2] == "SchedulingGated"
    assert cells("pods", "", pod({"phase": "Failed", "reason": "Evicted"}))[2] == "Evicted"


def test_sidecar_counts_towards_ready_and_restarts() -> None:
    spec = {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "web"}]}
    proxy = {**running("proxy", restarts=1), "started": True,
             "lastState": {"terminated": {"finishedAt": ago(minutes=5)}}}
    status = {"phase": "Running", "initContainerStatuses": [proxy],
              "containerStatuses": [running()]}
    assert cells("pods", "", pod(status, spec=spec))[1:4] == ["2/2", "Running", "1 (5m ago)"]


def test_succeeded_pod_row_carries_completed_condition() -> None:
    status = {"phase": "Succeeded",
              "containerStatuses": [terminated(exitCode=0, reason="Completed")]}
    row = table("pods", "", [pod(status)], now=NOW)["rows"][0]
    assert row["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                  "message": "The pod has completed successfully."}]
    running_row = table("pods", "", [pod({"phase": "Running"})], now=NOW)["rows"][0]
    assert "conditions" not in running_row


def test_pod_wide_cells() -> None:
    spec = {"containers": [{"name": "web"}], "nodeName": "node-2",
            "readinessGates": [{"conditionType": "example.com/lb"},
                               {"conditionType": "example.com/dns"}]}
    status = {"phase": "Running", "podIP": "10.244.1.9", "nominatedNodeName": "node-3",
              "conditions": [{"type": "example.com/lb", "status": "True"},
                             {"type": "example.com/dns", "status": "False"}],
              "containerStatuses": [running()]}
    assert cells("pods", "", pod(status, spec=spec))[5:] == [
        "10.244.1.9", "node-2", "node-3", "1/2",
    ]


# --- nodes, namespaces, services, endpoints ----------------------------------------------------


def node(**fields: Any) -> dict[str, Any]:
    labels = fields.pop("labels", {})
    return {"metadata": {"name": "node-1", "creationTimestamp": CREATED, "labels": labels},
            **fields}


def test_node_headers() -> None:
    assert headers("nodes") == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert headers("nodes", wide=True)[5:] == [
        "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME",
    ]


def test_ready_control_plane_node() -> None:
    ready = node(
        labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/os": "linux"},
        status={
            "conditions": [{"type": "MemoryPressure", "status": "False"},
                           {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                          {"type": "Hostname", "address": "node-1"}],
            "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Ubuntu 24.04 LTS",
                         "kernelVersion": "6.8.0-45-generic",
                         "containerRuntimeVersion": "containerd://1.7.22"},
        },
    )
    assert cells("nodes", "", ready) == [
        "node-1", "Ready", "control-plane", "4h", "v1.32.4", "192.168.1.10", "<none>",
        "Ubuntu 24.04 LTS", "6.8.0-45-generic", "containerd://1.7.22",
    ]


def test_not_ready_cordoned_node() -> None:
    cordoned = node(spec={"unschedulable": True},
                    status={"conditions": [{"type": "Ready", "status": "False"}]})
    assert cells("nodes", "", cordoned) == [
        "node-1", "NotReady,SchedulingDisabled", "<none>", "4h", "", "<none>", "<none>",
        "<unknown>", "<unknown>", "<unknown>",
    ]


def test_node_without_ready_condition_and_with_legacy_role_label() -> None:
    labelled = node(labels={"kubernetes.io/role": "worker", "node-role.kubernetes.io/infra": ""},
                    status={"conditions": [{"type": "Ready", "status": "Unknown"}]})
    assert cells("nodes", "", labelled)[1:3] == ["NotReady", "infra,worker"]
    assert cells("nodes", "", node())[1] == "Unknown"


def test_namespace_row() -> None:
    ns = {"metadata": {"name": "default", "creationTimestamp": CREATED},
          "status": {"phase": "Active"}}
    assert headers("namespaces") == ["NAME", "STATUS", "AGE"]
    assert cells("namespaces", "", ns) == ["default", "Active", "4h"]


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": spec, "status": status or {}}


def test_service_headers() -> None:
    assert headers("services") == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert headers("services", wide=True)[6:] == ["SELECTOR"]


def test_cluster_ip_service() -> None:
    dns = service({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                   "selector": {"k8s-app": "kube-dns"}})
    assert cells("services", "", dns) == [
        "web", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "4h", "k8s-app=kube-dns",
    ]


def test_node_port_service() -> None:
    svc = service({"type": "NodePort", "clusterIP": "10.96.12.7",
                   "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
                   "selector": {"tier": "web", "app": "shop"}})
    assert cells("services", "", svc) == [
        "web", "NodePort", "10.96.12.7", "<none>", "80:30080/TCP", "4h", "app=shop,tier=web",
    ]


def test_load_balancer_external_ip() -> None:
    spec = {"type": "LoadBalancer", "clusterIP": "10.96.3.3",
            "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}
    assert cells("services", "", service(spec))[3] == "<pending>"
    status = {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"},
                                           {"ip": "203.0.113.9"}]}}
    assert cells("services", "", service(spec, status))[3] == "203.0.113.9,lb.example.com"
    with_external = {**spec, "externalIPs": ["198.51.100.4"]}
    assert cells("services", "", service(with_external, status))[3] == (
        "203.0.113.9,lb.example.com,198.51.100.4"
    )


def test_external_name_headless_and_external_ip_services() -> None:
    external = service({"type": "ExternalName", "externalName": "db.example.com"})
    assert cells("services", "", external)[1:5] == [
        "ExternalName", "<none>", "db.example.com", "<none>",
    ]
    headless = service({"clusterIP": "None", "ports": [{"port": 5432}]})
    assert cells("services", "", headless)[1:5] == ["ClusterIP", "None", "<none>", "5432/TCP"]
    pinned = service({"type": "ClusterIP", "clusterIP": "10.96.0.2",
                      "externalIPs": ["192.0.2.1", "192.0.2.2"]})
    assert cells("services", "", pinned)[3] == "192.0.2.1,192.0.2.2"
    assert cells("services", "", pinned)[6] == "<none>"


def endpoints(*subsets: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": meta("web"), "subsets": list(subsets)}


def addresses(*ips: str) -> list[dict[str, str]]:
    return [{"ip": ip} for ip in ips]


def test_endpoints_rows() -> None:
    assert headers("endpoints") == ["NAME", "ENDPOINTS", "AGE"]
    two = endpoints({"addresses": addresses("10.0.0.1", "10.0.0.2"), "ports": [{"port": 8080}]})
    assert cells("endpoints", "", two) == ["web", "10.0.0.1:8080,10.0.0.2:8080", "4h"]
    assert cells("endpoints", "", endpoints())[1] == "<none>"


def test_endpoints_truncate_after_three() -> None:
    five = endpoints({"addresses": addresses("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4",
                                             "10.0.0.5"),
                      "ports": [{"name": "http", "port": 80}]})
    assert cells("endpoints", "", five)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."


def test_endpoints_ipv6_portless_and_not_ready_only() -> None:
    v6 = endpoints({"addresses": addresses("fd00::1"), "ports": [{"port": 80}]})
    assert cells("endpoints", "", v6)[1] == "[fd00::1]:80"
    portless = endpoints({"addresses": addresses("10.0.0.1", "10.0.0.2")})
    assert cells("endpoints", "", portless)[1] == "10.0.0.1,10.0.0.2"
    not_ready = endpoints({"notReadyAddresses": addresses("10.0.0.1"), "ports": [{"port": 80}]})
    assert cells("endpoints", "", not_ready)[1] == ""


# --- configmaps, secrets, serviceaccounts, events ----------------------------------------------


def test_configmap_secret_and_serviceaccount_rows() -> None:
    assert headers("configmaps") == ["NAME", "DATA", "AGE"]
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert cells("configmaps", "", cm) == ["cfg", 3, "4h"]
    assert headers("secrets") == ["NAME", "TYPE", "DATA", "AGE"]
    tls = {"metadata": meta("tls"), "type": "kubernetes.io/tls",
           "data": {"tls.crt": "QQ==", "tls.key": "QQ=="}}
    assert cells("secrets", "", tls) == ["tls", "kubernetes.io/tls", 2, "4h"]
    assert cells("secrets", "", {"metadata": meta("s")})[1:3] == ["Opaque", 0]
    assert headers("serviceaccounts") == ["NAME", "SECRETS", "AGE"]
    sa = {"metadata": meta("default"), "secrets": [{"name": "default-token"}]}
    assert cells("serviceaccounts", "", sa) == ["default", 1, "4h"]
    assert cells("serviceaccounts", "", {"metadata": meta("build")})[1] == 0


def test_event_headers() -> None:
    assert headers("events") == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert headers("events", wide=True) == [
        "LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE", "MESSAGE", "FIRST SEEN",
        "COUNT", "NAME",
    ]
    assert headers("events", "events.k8s.io") == headers("events")


def test_core_event_row() -> None:
    event = {
        "metadata": meta("web-1.17f3a"),
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
        "reason": "BackOff", "type": "Warning",
        "message": "Back-off restarting failed container web\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(minutes=5), "lastTimestamp": ago(seconds=30), "count": 4,
    }
    assert cells("events", "", event) == [
        "30s", "Warning", "BackOff", "pod/web-1", "spec.containers{web}", "kubelet, node-1",
        "Back-off restarting failed container web", "5m", 4, "web-1.17f3a",
    ]


def test_event_from_new_api_fields_and_series() -> None:
    event = {
        "metadata": meta("web-1.18a"),
        "involvedObject": {"kind": "Pod", "name": "web-1"},
        "reason": "Scheduled", "type": "Normal", "message": "Successfully assigned",
        "eventTime": (NOW - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": "default-scheduler",
    }
    row = cells("events", "", event)
    assert row[0] == row[7] == "90s"
    assert row[3] == "pod/web-1"
    assert row[5:] == ["default-scheduler", "Successfully assigned", "90s", 1, "web-1.18a"]
    series = {**event, "series": {"count": 7, "lastObservedTime": ago(seconds=10)}}
    assert cells("events", "", series)[0] == "10s"
    assert cells("events", "", series)[8] == 7


def test_events_k8s_io_event_row() -> None:
    event = {
        "metadata": meta("node-1.19b"),
        "regarding": {"kind": "Node", "name": "node-1"},
        "reason": "NodeReady", "type": "Normal", "note": "Node node-1 status is now: NodeReady",
        "deprecatedSource": {"component": "kubelet", "host": "node-1"},
        "deprecatedFirstTimestamp": ago(hours=1), "deprecatedLastTimestamp": ago(minutes=3),
        "deprecatedCount": 2,
    }
    assert cells("events", "events.k8s.io", event) == [
        "3m", "Normal", "NodeReady", "node/node-1", "", "kubelet, node-1",
        "Node node-1 status is now: NodeReady", "60m", 2, "node-1.19b",
    ]


# --- apps --------------------------------------------------------------------------------------

TEMPLATE = {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                    {"name": "log", "image": "busybox:1.36"}]}}


def test_deployment_row() -> None:
    assert headers("deployments", "apps") == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert headers("deployments", "apps", wide=True)[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    deployment = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                   "availableReplicas": 2},
    }
    assert cells("deployments", "apps", deployment) == [
        "web", "2/3", 3, 2, "4h", "nginx,log", "nginx:1.27,busybox:1.36", "app=web",
    ]


def test_deployment_selector_expressions_and_defaults() -> None:
    selector = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe", "be"]},
        {"key": "canary", "operator": "DoesNotExist"},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "team", "operator": "Exists"},
    ]}
    deployment = {"metadata": meta("web"), "spec": {"selector": selector}}
    row = cells("deployments", "apps", deployment)
    assert row[1:4] == ["0/1", 0, 0]
    assert row[7] == "app=web,!canary,env notin (dev),team,tier in (be,fe)"
    bad = {"metadata": meta("web"),
           "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}}
    assert cells("deployments", "apps", bad)[7] == "<invalid>"
    assert cells("replicasets", "apps", bad)[7] == "<error>"


def test_replicaset_row() -> None:
    assert headers("replicasets", "apps") == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    rs = {
        "metadata": meta("web-7d4b9c"),
        "spec": {"replicas": 3, "template": TEMPLATE, "selector": {
            "matchLabels": {"app": "web", "pod-template-hash": "7d4b9c"}}},
        "status": {"replicas": 3, "readyReplicas": 2},
    }
    assert cells("replicasets", "apps", rs) == [
        "web-7d4b9c", 3, 3, 2, "4h", "nginx,log", "nginx:1.27,busybox:1.36",
        "app=web,pod-template-hash=7d4b9c",
    ]


def test_daemonset_row() -> None:
    assert headers("daemonsets", "apps") == [
        "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE",
    ]
    ds = {
        "metadata": meta("kube-proxy"),
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "kube-proxy",
                                                       "image": "pinnace/proxy:0.1"}]}}},
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                   "updatedNumberScheduled": 2, "numberAvailable": 1},
    }
    assert cells("daemonsets", "apps", ds) == [
        "kube-proxy", 2, 2, 1, 2, 1, "kubernetes.io/os=linux", "4h", "kube-proxy",
        "pinnace/proxy:0.1", "k8s-app=kube-proxy",
    ]
    assert cells("daemonsets", "apps", {"metadata": meta("x")})[6] == "<none>"


def test_statefulset_row() -> None:
    assert headers("statefulsets", "apps") == ["NAME", "READY", "AGE"]
    sts = {"metadata": meta("db"), "spec": {"replicas": 3, "template": TEMPLATE},
           "status": {"replicas": 2, "readyReplicas": 1}}
    assert cells("statefulsets", "apps", sts) == [
        "db", "1/3", "4h", "nginx,log", "nginx:1.27,busybox:1.36",
    ]


# --- batch -------------------------------------------------------------------------------------


def job(spec: dict[str, Any], status: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    spec = {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}},
            **spec}
    return {"metadata": meta("pi", **metadata), "spec": spec, "status": status}


def test_job_headers_and_complete_row() -> None:
    assert headers("jobs", "batch") == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert headers("jobs", "batch", wide=True)[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    done = job({"completions": 1}, {
        "succeeded": 1, "startTime": ago(minutes=10), "completionTime": ago(minutes=9, seconds=50),
        "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                       {"type": "Complete", "status": "True"}],
    })
    assert cells("jobs", "batch", done) == [
        "pi", "Complete", "1/1", "10s", "4h", "pi", "perl:5.34",
        "batch.kubernetes.io/controller-uid=abc",
    ]


@pytest.mark.parametrize(
    ("spec", "status", "metadata", "expected"),
    [
        ({"completions": 3}, {"succeeded": 1, "startTime": ago(minutes=3, seconds=5)}, {},
         ["Running", "1/3", "3m5s"]),
        ({"parallelism": 4}, {}, {}, ["Running", "0/1 of 4", ""]),
        ({"parallelism": 1}, {"startTime": ago(seconds=30)}, {}, ["Running", "0/1", "30s"]),
        ({"completions": 2}, {"failed": 7, "conditions": [
            {"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]},
         {}, ["Failed", "0/2", ""]),
        ({"completions": 1}, {"conditions": [{"type": "Suspended", "status": "True"}]}, {},
         ["Suspended", "0/1", ""]),
        ({"completions": 1}, {"conditions": [{"type": "FailureTarget", "status": "True"}]}, {},
         ["FailureTarget", "0/1", ""]),
        ({"completions": 1}, {"conditions": [{"type": "Complete", "status": "False"}]},
         {"deletionTimestamp": ago(seconds=1)}, ["Terminating", "0/1", ""]),
    ],
)
def test_job_status_completions_duration(
    spec: dict[str, Any], status: dict[str, Any], metadata: dict[str, Any], expected: list[str]
) -> None:
    assert cells("jobs", "batch", job(spec, status, **metadata))[1:4] == expected


def test_cronjob_row() -> None:
    assert headers("cronjobs", "batch") == [
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE",
    ]
    cron = {
        "metadata": meta("backup"),
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
            "spec": {"containers": [{"name": "backup", "image": "restic:0.17"}]}}}}},
        "status": {"active": [{"name": "backup-29123"}], "lastScheduleTime": ago(minutes=2)},
    }
    assert cells("cronjobs", "batch", cron) == [
        "backup", "*/5 * * * *", "<none>", "False", 1, "2m", "4h", "backup", "restic:0.17",
        "<none>",
    ]
    paused = {"metadata": meta("nightly"),
              "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "suspend": True}}
    assert cells("cronjobs", "batch", paused)[1:6] == [
        "0 3 * * *", "Europe/Paris", "True", 0, "<none>",
    ]


# --- leases, endpointslices, HPAs, RBAC, default -----------------------------------------------


def test_lease_row() -> None:
    assert headers("leases", "coordination.k8s.io") == ["NAME", "HOLDER", "AGE"]
    lease = {"metadata": meta("node-1"), "spec": {"holderIdentity": "node-1"}}
    assert cells("leases", "coordination.k8s.io", lease) == ["node-1", "node-1", "4h"]
    assert cells("leases", "coordination.k8s.io", {"metadata": meta("free")})[1] == ""


def test_endpointslice_row() -> None:
    group = "discovery.k8s.io"
    assert headers("endpointslices", group) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    eps = {"metadata": meta("web-abc12"), "addressType": "IPv4",
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}],
           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                         {"addresses": ["10.0.0.4"], "conditions": {"ready": False}}]}
    assert cells("endpointslices", group, eps) == [
        "web-abc12", "IPv4", "80,metrics,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "4h",
    ]
    empty = {"metadata": meta("web-empty"), "addressType": "IPv6"}
    assert cells("endpointslices", group, empty)[1:4] == ["IPv6", "<unset>", "<unset>"]


def hpa(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": meta("web"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": "web"},
                     "minReplicas": 1, "maxReplicas": 10, **spec},
            "status": status}


CPU_80 = {"type": "Resource",
          "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}


def test_hpa_row() -> None:
    assert headers("horizontalpodautoscalers", "autoscaling") == [
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE",
    ]
    status = {"currentReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45}}}]}
    assert cells("horizontalpodautoscalers", "autoscaling", hpa({"metrics": [CPU_80]}, status),
                 api_version="v2") == ["web", "Deployment/web", "cpu: 45%/80%", "1", 10, 3, "4h"]


def test_hpa_targets_variants() -> None:
    def targets(spec: dict[str, Any], status: dict[str, Any], version: str = "v2") -> Any:
        obj = hpa(spec, status)
        return cells("horizontalpodautoscalers", "autoscaling", obj, api_version=version)[2]

    assert targets({"metrics": [CPU_80]}, {}) == "cpu: <unknown>/80%"
    assert targets({}, {}) == "<none>"
    assert targets({"targetCPUUtilizationPercentage": 50},
                   {"currentCPUUtilizationPercentage": 12}, "v1") == "cpu: 12%/50%"
    assert targets({"targetCPUUtilizationPercentage": 50}, {}, "v1") == "cpu: <unknown>/50%"
    memory = {"type": "Resource", "resource": {"name": "memory",
                                               "target": {"averageValue": "500Mi"}}}
    pods = {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                     "target": {"averageValue": "1k"}}}
    external = {"type": "External", "external": {"metric": {"name": "queue"},
                                                 "target": {"averageValue": "30"}}}
    assert targets({"metrics": [pods]},
                   {"currentMetrics": [{"pods": {"current": {"averageValue": "250"}}}]}) == (
        "250/1k"
    )
    assert targets({"metrics": [external]}, {}) == "<unknown>/30 (avg)"
    assert targets({"metrics": [CPU_80, memory, pods]}, {}) == (
        "cpu: <unknown>/80%, memory: <unknown>/500Mi + 1 more..."
    )
    assert targets({"metrics": [{"type": "Bogus"}]}, {}) == "<unknown type>"


def test_role_binding_rows() -> None:
    group = "rbac.authorization.k8s.io"
    assert headers("rolebindings", group) == ["NAME", "ROLE", "AGE"]
    assert headers("clusterrolebindings", group, wide=True)[3:] == [
        "USERS", "GROUPS", "SERVICEACCOUNTS",
    ]
    binding = {
        "metadata": meta("read-pods"),
        "roleRef": {"apiGroup": group, "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "User", "name": "joe"},
                     {"kind": "Group", "name": "devs"},
                     {"kind": "ServiceAccount", "name": "build", "namespace": "ci"}],
    }
    assert cells("rolebindings", group, binding) == [
        "read-pods", "Role/pod-reader", "4h", "jane, joe", "devs", "ci/build",
    ]
    admin = {"metadata": {"name": "cluster-admin", "creationTimestamp": CREATED},
             "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"kind": "Group", "name": "system:masters"}]}
    assert cells("clusterrolebindings", group, admin) == [
        "cluster-admin", "ClusterRole/cluster-admin", "4h", "", "system:masters", "",
    ]


@pytest.mark.parametrize(
    ("resource", "group"),
    [("roles", "rbac.authorization.k8s.io"), ("clusterroles", "rbac.authorization.k8s.io"),
     ("widgets", "example.com"), ("pods", "example.com")],
)
def test_default_table(resource: str, group: str) -> None:
    assert headers(resource, group) == ["NAME", "CREATED AT"]
    definitions = column_definitions(resource, group)
    assert definitions[0]["format"] == "name"
    assert definitions[1]["type"] == "date"
    role = {"metadata": {"name": "pod-reader", "creationTimestamp": "2026-11-25T10:00:00+02:00"}}
    assert cells(resource, group, role) == ["pod-reader", "2026-11-25T08:00:00Z"]
    assert cells(resource, group, {"metadata": {"name": "x"}})[1] == "0001-01-01T00:00:00Z"


def test_replicationcontroller_row() -> None:
    rc = {"metadata": meta("legacy"),
          "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": TEMPLATE},
          "status": {"replicas": 2, "readyReplicas": 2}}
    assert headers("replicationcontrollers") == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert cells("replicationcontrollers", "", rc) == [
        "legacy", 2, 2, 2, "4h", "nginx,log", "nginx:1.27,busybox:1.36", "app=legacy",
    ]
