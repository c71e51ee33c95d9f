"""Protobuf schema table for meta/v1 (ObjectMeta, OwnerReference, ManagedFieldsEntry, selectors).

Field numbers and JSON names are facts from apimachinery's pkg/apis/meta/v1 generated.proto and
types.go (v0.35.7); KEEP marks scalars Go's JSON keeps at zero (pointers, fields without
omitempty). Time, Quantity, IntOrString and FieldsV1 are converted in decode, not listed here.
Generated-style data: edit by copying upstream facts, one line per field.
"""

from __future__ import annotations

from controlplane.api.protobuf.schema import (
    BOOL,
    FIELDSV1,
    I64,
    KEEP,
    LIST,
    MAP,
    STR,
    TIME,
    Message,
)

META: dict[str, Message] = {
    "meta.ObjectMeta": {
        1: ("name", STR, 0),
        2: ("generateName", STR, 0),
        3: ("namespace", STR, 0),
        4: ("selfLink", STR, 0),
        5: ("uid", STR, 0),
        6: ("resourceVersion", STR, 0),
        7: ("generation", I64, 0),
        8: ("creationTimestamp", TIME, 0),
        9: ("deletionTimestamp", TIME, 0),
        10: ("deletionGracePeriodSeconds", I64, KEEP),
        11: ("labels", STR, MAP),
        12: ("annotations", STR, MAP),
        13: ("ownerReferences", "meta.OwnerReference", LIST),
        14: ("finalizers", STR, LIST),
        17: ("managedFields", "meta.ManagedFieldsEntry", LIST),
    },
    "meta.OwnerReference": {
        1: ("kind", STR, KEEP),
        3: ("name", STR, KEEP),
        4: ("uid", STR, KEEP),
        5: ("apiVersion", STR, KEEP),
        6: ("controller", BOOL, KEEP),
        7: ("blockOwnerDeletion", BOOL, KEEP),
    },
    "meta.ManagedFieldsEntry": {
        1: ("manager", STR, 0),
        2: ("operation", STR, 0),
        3: ("apiVersion", STR, 0),
        4: ("time", TIME, 0),
        6: ("fieldsType", STR, 0),
        7: ("fieldsV1", FIELDSV1, 0),
        8: ("subresource", STR, 0),
    },
    "meta.LabelSelector": {
        1: ("matchLabels", STR, MAP),
        2: ("matchExpressions", "meta.LabelSelectorRequirement", LIST),
    },
    "meta.Condition": {
        1: ("type", STR, KEEP),
        2: ("status", STR, KEEP),
        3: ("observedGeneration", I64, 0),
        4: ("lastTransitionTime", TIME, 0),
        5: ("reason", STR, KEEP),
        6: ("message", STR, KEEP),
    },
    "meta.LabelSelectorRequirement": {
        1: ("key", STR, KEEP),
        2: ("operator", STR, KEEP),
        3: ("values", STR, LIST),
    },
}
