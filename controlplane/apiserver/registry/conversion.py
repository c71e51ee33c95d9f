"""One object, several API versions: how a served version maps onto the version it is stored as.

Kubernetes keeps one copy of an object however many group/versions serve it (core/v1 and
events.k8s.io/v1 Events, autoscaling/v1 and v2 HorizontalPodAutoscalers) and converts on the
way in and out. A served version that differs from its storage version names a `Conversion`:
the storage group/version/kind and two pure functions. The Store converts a request's object to
storage form before defaults, validation and the write, and every object it hands back to the
requested version; the watch cache holds storage form and the handler converts each event.
Metadata passes through unchanged, so uid and resourceVersion are the same through every version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.api import errors
from controlplane.api.selectors import FieldSelector

Object = dict[str, Any]
Convert = Callable[[Object], Object]


@dataclass(frozen=True, eq=False)
class Conversion:
    """A served version's way to and from its storage version (hashable by identity)."""

    group: str  # what the objects are stored as
    version: str
    kind: str
    to_storage: Convert  # a served object as stored: a new object, never an alias of its input
    from_storage: Convert  # a stored object as served: likewise new
    # Field selector labels of the served version -> the storage version's (Kubernetes'
    # AddFieldLabelConversionFunc); None when both versions select on the same names.
    field_labels: Mapping[str, str] | None = None

    @property
    def api_version(self) -> str:
        """The storage version's apiVersion."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def field_selector(self, selector: FieldSelector) -> FieldSelector:
        """`selector` (served labels) in the storage version's labels; BadRequest when one has
        no counterpart, in kube-apiserver's words."""
        if self.field_labels is None:
            return selector
        terms = []
        for field, op, value in selector.requirements:
            if field not in self.field_labels:
                raise errors.BadRequest(f"field label not supported: {field}")
            terms.append((self.field_labels[field], op, value))
        return FieldSelector(tuple(terms))

    def __repr__(self) -> str:
        return f"<Conversion to {self.kind}.{self.api_version}>"


def go_json(value: Any) -> str:
    """`value` as Go's json.Marshal writes a struct: compact, keys in the order given (the
    struct's field order), HTML-safe. For the JSON Kubernetes keeps in annotations."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text
