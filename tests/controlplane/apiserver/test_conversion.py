"""The conversions between served and stored versions, as pure functions: events.k8s.io/v1 <->
core/v1 Events and autoscaling/v1 <-> autoscaling/v2 HorizontalPodAutoscalers (the annotations
v1 carries v2's other metrics, status and behavior in), and field label conversion."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.api import errors
from controlplane.api.selectors import FieldSelector
from controlplane.apiserver.registry import conversion_autoscaling as hpa
from controlplane.apiserver.registry import conversion_events as events
from controlplane.apiserver.registry.resources import lookup

Object = dict[str, Any]

CORE_EVENT: Object = {
    "kind": "Event", "apiVersion": "v1",
    "metadata": {"name": "web.1", "namespace": "default", "uid": "u-1", "resourceVersion": "7"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "p-1",
                       "apiVersion": "v1", "fieldPath": "spec.containers{main}"},
    "reason": "Pulled", "message": "Pulled the image", "type": "Normal",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:05:00Z",
    "count": 3, "eventTime": None, "action": "Pulling",
    "series": {"count": 2, "lastObservedTime": "2024-05-01T10:05:00.000000Z"},
    "related": {"kind": "Node", "name": "node-1"},
    "reportingComponent": "kubelet", "reportingInstance": "node-1",
}


def test_core_event_as_events_k8s_io() -> None:
    served = events.from_core(CORE_EVENT)
    assert (served["apiVersion"], served["kind"]) == ("events.k8s.io/v1", "Event")
    assert served["metadata"] == CORE_EVENT["metadata"]
    assert served["regarding"] == CORE_EVENT["involvedObject"]
    assert served["note"] == "Pulled the image"
    assert served["reportingController"] == "kubelet"
    assert served["reportingInstance"] == "node-1"
    assert served["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert served["deprecatedFirstTimestamp"] == "2024-05-01T10:00:00Z"
    assert served["deprecatedLastTimestamp"] == "2024-05-01T10:05:00Z"
    assert served["deprecatedCount"] == 3
    for same in ("eventTime", "series", "action", "reason", "type", "related"):
        assert served[same] == CORE_EVENT[same]
    for core_only in ("involvedObject", "message", "source", "firstTimestamp", "count",
                      "reportingComponent"):
        assert core_only not in served


def test_event_conversion_copies() -> None:
    served = events.from_core(CORE_EVENT)
    served["regarding"]["name"] = "changed"
    assert CORE_EVENT["involvedObject"]["name"] == "web"


def test_absent_event_fields_stay_absent() -> None:
    new = {"metadata": {"name": "e"}, "eventTime": "2024-05-01T10:00:00.000000Z",
           "regarding": {"kind": "Node", "name": "n"}, "note": "hi"}
    assert events.to_core(new) == {
        "kind": "Event", "apiVersion": "v1", "metadata": {"name": "e"},
        "eventTime": "2024-05-01T10:00:00.000000Z", "involvedObject": {"kind": "Node",
                                                                       "name": "n"},
        "message": "hi"}


_names = st.sampled_from(["a", "b", "kubelet"])
_event_fields = st.fixed_dictionaries({}, optional={
    "metadata": st.fixed_dictionaries({"name": _names}),
    "eventTime": st.none() | st.just("2024-05-01T10:00:00.000000Z"),
    "series": st.fixed_dictionaries({"count": st.integers(0, 9)}),
    "reportingController": _names, "reportingInstance": _names, "action": _names,
    "reason": _names, "regarding": st.fixed_dictionaries({"name": _names}),
    "related": st.fixed_dictionaries({"kind": _names}), "note": st.text(max_size=5),
    "type": st.sampled_from(["Normal", "Warning"]),
    "deprecatedSource": st.fixed_dictionaries({"component": _names}),
    "deprecatedFirstTimestamp": st.just("2024-05-01T10:00:00Z"),
    "deprecatedLastTimestamp": st.just("2024-05-01T10:00:00Z"),
    "deprecatedCount": st.integers(0, 9)})


@given(_event_fields)
def test_events_round_trip_through_core(fields: Object) -> None:
    served = {"kind": "Event", "apiVersion": "events.k8s.io/v1", **fields}
    assert events.from_core(events.to_core(served)) == served


def test_core_events_round_trip() -> None:
    assert events.to_core(events.from_core(CORE_EVENT)) == CORE_EVENT


def test_events_field_labels_name_the_core_fields() -> None:
    conversion = events.EVENTS_V1
    selector = FieldSelector.parse(
        "regarding.name=web,regarding.kind=Pod,reportingController!=kubelet,type=Normal")
    stored = conversion.field_selector(selector)
    assert set(stored.requirements) == {("involvedObject.name", "=", "web"),
                                        ("involvedObject.kind", "=", "Pod"),
                                        ("reportingComponent", "!=", "kubelet"),
                                        ("type", "=", "Normal")}
    with pytest.raises(errors.BadRequest, match="field label not supported: involvedObject.name"):
        conversion.field_selector(FieldSelector.parse("involvedObject.name=web"))
    with pytest.raises(errors.BadRequest, match="field label not supported: note"):
        conversion.field_selector(FieldSelector.parse("note=x"))


def test_resources_name_their_storage_version() -> None:
    served = lookup("events.k8s.io", "v1", "events")
    core = lookup("", "v1", "events")
    assert served is not None and core is not None
    assert served.key_prefix == core.key_prefix == "/registry/events/"
    assert served.conversion is events.EVENTS_V1 and core.conversion is None
    assert served.strategy is core.strategy
    v1 = lookup("autoscaling", "v1", "horizontalpodautoscalers")
    v2 = lookup("autoscaling", "v2", "horizontalpodautoscalers")
    assert v1 is not None and v2 is not None
    assert v1.key_prefix == v2.key_prefix == "/registry/horizontalpodautoscalers/"
    assert v1.conversion is hpa.HPA_V1 and v2.conversion is None


# --- HorizontalPodAutoscalers -------------------------------------------------------------------

TARGET = {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}
CPU_70 = {"type": "Resource", "resource": {"name": "cpu", "target": {
    "type": "Utilization", "averageUtilization": 70}}}
MEMORY = {"type": "Resource", "resource": {"name": "memory", "target": {
    "type": "AverageValue", "averageValue": "100Mi"}}}
PODS = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
    "type": "AverageValue", "averageValue": "1k"}}}
EXTERNAL = {"type": "External", "external": {
    "metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
    "target": {"type": "Value", "value": "30"}}}
OBJECT = {"type": "Object", "object": {
    "describedObject": {"kind": "Service", "name": "front", "apiVersion": "v1"},
    "target": {"type": "Value", "value": "5"}, "metric": {"name": "rps"}}}
CONTAINER = {"type": "ContainerResource", "containerResource": {
    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50},
    "container": "main"}}
BEHAVIOR = {"scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                          "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
CONDITION = {"type": "AbleToScale", "status": "True",
             "lastTransitionTime": "2024-05-01T10:00:00Z", "reason": "ReadyForNewScale",
             "message": "recommended size matches current size"}
CPU_NOW = {"type": "Resource", "resource": {"name": "cpu", "current": {
    "averageValue": "200m", "averageUtilization": 40}}}
PODS_NOW = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {
    "averageValue": "800"}}}


def v2(metrics: list[Object], *, behavior: Object | None = None,
       status: Object | None = None, annotations: dict[str, str] | None = None) -> Object:
    obj: Object = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
                   "metadata": {"name": "web", "namespace": "default", "uid": "u-2",
                                "resourceVersion": "9"},
                   "spec": {"scaleTargetRef": TARGET, "minReplicas": 1, "maxReplicas": 5,
                            "metrics": metrics}}
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    if behavior is not None:
        obj["spec"]["behavior"] = behavior
    if status is not None:
        obj["status"] = status
    return obj


def annotation(obj: Object, key: str) -> Any:
    return json.loads(obj["metadata"]["annotations"][key])


def test_v1_cpu_target_is_a_v2_utilization_metric() -> None:
    v1 = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": TARGET, "maxReplicas": 3,
                                                "targetCPUUtilizationPercentage": 70}}
    stored = hpa.to_v2(v1)
    assert (stored["apiVersion"], stored["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert stored["spec"] == {"scaleTargetRef": TARGET, "maxReplicas": 3, "metrics": [CPU_70]}
    assert "status" not in stored and "annotations" not in stored["metadata"]


def test_v1_without_a_target_gets_the_implied_80_percent() -> None:
    stored = hpa.to_v2({"metadata": {"name": "web"},
                        "spec": {"scaleTargetRef": TARGET, "maxReplicas": 3}})
    assert stored["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


def test_v2_as_v1_keeps_the_rest_in_annotations() -> None:
    stored = v2([MEMORY, CPU_70, PODS], behavior=BEHAVIOR, annotations={"team": "a"},
                status={"currentReplicas": 2, "desiredReplicas": 3,
                        "currentMetrics": [CPU_NOW, PODS_NOW], "conditions": [CONDITION]})
    v1 = hpa.to_v1(stored)
    assert (v1["apiVersion"], v1["kind"]) == ("autoscaling/v1", "HorizontalPodAutoscaler")
    assert v1["spec"] == {"scaleTargetRef": TARGET, "minReplicas": 1, "maxReplicas": 5,
                          "targetCPUUtilizationPercentage": 70}
    assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3,
                            "currentCPUUtilizationPercentage": 40}
    assert v1["metadata"]["uid"] == "u-2" and v1["metadata"]["resourceVersion"] == "9"
    assert v1["metadata"]["annotations"]["team"] == "a"
    assert annotation(v1, hpa.METRICS) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}},
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}}]
    assert annotation(v1, hpa.CURRENT_METRICS) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40,
                                          "currentAverageValue": "200m"}},
        {"type": "Pods", "pods": {"metricName": "qps", "currentAverageValue": "800"}}]
    assert annotation(v1, hpa.CONDITIONS) == [CONDITION]
    # Kubernetes marshals its internal type there: Go field names, nil rules as null.
    assert v1["metadata"]["annotations"][hpa.BEHAVIOR] == (
        '{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":300,"SelectPolicy":"Max",'
        '"Policies":[{"Type":"Percent","Value":100,"PeriodSeconds":15}]}}')
    assert stored["metadata"]["annotations"] == {"team": "a"}  # the input is left alone


def test_a_cpu_only_v2_needs_no_annotations() -> None:
    v1 = hpa.to_v1(v2([CPU_70], status={"desiredReplicas": 1}))
    assert "annotations" not in v1["metadata"]
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70


@pytest.mark.parametrize("metric", [MEMORY, PODS, EXTERNAL, OBJECT, CONTAINER],
                         ids=lambda m: m["type"] + "-" + str(len(json.dumps(m))))
def test_each_metric_source_round_trips_through_v1(metric: Object) -> None:
    stored = v2([CPU_70, metric])
    back = hpa.to_v2(hpa.to_v1(stored))
    assert back["spec"]["metrics"] == [metric, CPU_70]  # the cpu target goes last


def test_v2_round_trips_through_v1() -> None:
    stored = v2([MEMORY, EXTERNAL, OBJECT, CPU_70], behavior=BEHAVIOR, annotations={"a": "b"},
                status={"observedGeneration": 2, "lastScaleTime": "2024-05-01T10:00:00Z",
                        "currentReplicas": 2, "desiredReplicas": 3,
                        "currentMetrics": [CPU_NOW, PODS_NOW], "conditions": [CONDITION]})
    assert hpa.to_v2(hpa.to_v1(stored)) == stored


def test_v1_round_trips_through_v2() -> None:
    v1 = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1",
          "metadata": {"name": "web", "labels": {"app": "web"}},
          "spec": {"scaleTargetRef": TARGET, "minReplicas": 2, "maxReplicas": 4,
                   "targetCPUUtilizationPercentage": 60},
          "status": {"currentReplicas": 2, "desiredReplicas": 2,
                     "currentCPUUtilizationPercentage": 30}}
    assert hpa.to_v1(hpa.to_v2(v1)) == {**v1, "metadata": {
        **v1["metadata"], "annotations": {hpa.CURRENT_METRICS: (
            '[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":30,'
            '"currentAverageValue":"0"}}]')}}}


def test_round_trip_annotations_never_reach_storage() -> None:
    v1 = hpa.to_v1(v2([MEMORY, CPU_70], behavior=BEHAVIOR))
    stored = hpa.to_v2(v1)
    assert "annotations" not in stored["metadata"]
    assert stored["spec"]["behavior"] == BEHAVIOR
    stale = v2([CPU_70], annotations={hpa.METRICS: "[]", hpa.BEHAVIOR: "{}", "keep": "me"})
    assert hpa.to_v1(stale)["metadata"]["annotations"] == {"keep": "me"}


def test_malformed_annotations_are_ignored() -> None:
    v1 = {"metadata": {"name": "web", "annotations": {
        hpa.METRICS: "not json", hpa.CURRENT_METRICS: '[{"type": 5}]',
        hpa.CONDITIONS: '{"not": "a list"}', hpa.BEHAVIOR: '{"ScaleUp": {"Policies": 3}}'}},
        "spec": {"scaleTargetRef": TARGET, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70},
        "status": {"currentCPUUtilizationPercentage": 10}}
    stored = hpa.to_v2(v1)
    assert stored["spec"] == {"scaleTargetRef": TARGET, "maxReplicas": 3, "metrics": [CPU_70]}
    assert stored["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 10}}}]
    assert "conditions" not in stored["status"] and "annotations" not in stored["metadata"]


def test_behavior_annotation_decodes_as_go_does() -> None:
    text = ('{"scaleup": {"stabilizationwindowseconds": 0, "policies": '
            '[{"TYPE": "Pods", "value": 4, "periodSeconds": 15}]}, "ScaleDown": null}')
    stored = hpa.to_v2({"metadata": {"annotations": {hpa.BEHAVIOR: text}},
                        "spec": {"maxReplicas": 2}})
    assert stored["spec"]["behavior"] == {"scaleUp": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}}
    for empty in ("{}", "null", '{"ScaleUp": null}', '{"Other": 1}'):
        assert "behavior" not in hpa.to_v2({"metadata": {"annotations": {hpa.BEHAVIOR: empty}},
                                            "spec": {"maxReplicas": 2}})["spec"]


def test_only_the_first_cpu_metric_is_v1s_target() -> None:
    cpu_value = {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "AverageValue", "averageValue": "500m"}}}
    v1 = hpa.to_v1(v2([cpu_value, CPU_70]))
    assert "targetCPUUtilizationPercentage" not in v1["spec"]
    assert annotation(v1, hpa.METRICS) == [
        {"type": "Resource", "resource": {"name": "cpu", "targetAverageValue": "500m"}}]


def test_hpa_conversion_copies() -> None:
    stored = v2([MEMORY, CPU_70], behavior=BEHAVIOR)
    before = copy.deepcopy(stored)
    v1 = hpa.to_v1(stored)
    v1["spec"]["scaleTargetRef"]["name"] = "changed"
    hpa.to_v2(v1)["spec"]["metrics"][0]["resource"]["name"] = "changed"
    assert stored == before
