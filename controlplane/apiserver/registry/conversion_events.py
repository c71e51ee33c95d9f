"""events.k8s.io/v1 Events, stored as core/v1 Events (under /registry/events/).

The two are one type with renamed fields, as Kubernetes' pkg/apis/events/v1 conversion maps
them: regarding <-> involvedObject, note <-> message, reportingController <->
reportingComponent (core/v1's JSON name for the internal ReportingController), deprecatedSource
<-> source, deprecated{First,Last}Timestamp <-> {first,last}Timestamp, deprecatedCount <-> count;
eventTime, series, action, reason, type, related and reportingInstance keep their names. Only
the fields a version has cross (typed conversion); a field absent on one side stays absent.
Field selectors name the core/v1 labels through FIELD_LABELS, as kube-apiserver's.
"""

from __future__ import annotations

import copy

from controlplane.apiserver.registry.conversion import Conversion, Object

# events.k8s.io/v1 field -> core/v1 field, in events.k8s.io/v1's field order.
FIELDS: tuple[tuple[str, str], ...] = (
    ("metadata", "metadata"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("action", "action"),
    ("reason", "reason"),
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("type", "type"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)

# events.k8s.io/v1 field selector label -> core/v1's (AddFieldLabelConversionsForEvent).
FIELD_LABELS: dict[str, str] = {
    "metadata.name": "metadata.name",
    "metadata.namespace": "metadata.namespace",
    "reason": "reason",
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "regarding.apiVersion": "involvedObject.apiVersion",
    "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath",
    "reportingController": "reportingComponent",
    "source": "source",
    "type": "type",
}


def _renamed(obj: Object, pairs: tuple[tuple[str, str], ...], api_version: str) -> Object:
    out: Object = {"kind": "Event", "apiVersion": api_version}
    for source, target in pairs:
        if source in obj:
            out[target] = copy.deepcopy(obj[source])
    return out


def to_core(event: Object) -> Object:
    """An events.k8s.io/v1 Event as the core/v1 Event it is stored as."""
    return _renamed(event, FIELDS, "v1")


def from_core(event: Object) -> Object:
    """A core/v1 Event as events.k8s.io/v1 serves it."""
    return _renamed(event, tuple((core, events) for events, core in FIELDS), "events.k8s.io/v1")


EVENTS_V1 = Conversion("", "v1", "Event", to_storage=to_core, from_storage=from_core,
                       field_labels=FIELD_LABELS)
