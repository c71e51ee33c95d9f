"""Server-side printing: meta.k8s.io/v1 Tables for `kubectl get`, mirroring kube-apiserver.

kubectl 1.32 has no client-side printers; it asks for `as=Table` and prints the server's
columns. This package owns that conversion: `table()` turns listed objects into a Table,
`column_definitions()` gives a watch its header once. One module per API group registers a
`Printer` per resource (columns + a pure cell function); anything unregistered gets the
default NAME / CREATED AT table. Rows always carry the wide (priority 1) cells; kubectl hides
them unless `-o wide`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from . import apps, autoscaling, batch, coordination, core, discovery, events, pods, rbac
from .common import (
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    dig,
    human_duration,
    name_of,
    rfc3339,
)

__all__ = ["INCLUDE_OBJECT_VALUES", "column_definitions", "human_duration", "printer_for", "table"]

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")


def _default_cells(obj: Obj, ctx: PrintContext) -> list[Cell]:
    return [name_of(obj), rfc3339(dig(obj, "metadata", "creationTimestamp"))]


DEFAULT = Printer(
    (NAME, Column("Created At", "date", description="When the object was created.")),
    _default_cells,
)

_PRINTERS: dict[tuple[str, str], Printer] = {}
for _module in (pods, core, events, apps, batch, autoscaling, rbac, discovery, coordination):
    _PRINTERS.update(_module.PRINTERS)


def printer_for(resource: str, group: str) -> Printer:
    """Return the printer for a resource (plural, lower case) in an API group ("" for core)."""
    return _PRINTERS.get((group, resource.lower()), DEFAULT)


def column_definitions(resource: str, group: str) -> list[dict[str, Any]]:
    """Return the Table columnDefinitions for a resource, e.g. for a watch's first event."""
    return [column.definition() for column in printer_for(resource, group).columns]


def _row(printer: Printer, obj: Obj, ctx: PrintContext, include_object: str) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": printer.cells(obj, ctx)}
    if printer.conditions is not None and (conditions := printer.conditions(obj)):
        row["conditions"] = conditions
    if include_object == "Metadata":
        metadata = obj.get("metadata")
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
        }
    elif include_object == "Object":
        row["object"] = obj
    return row


def table(
    resource: str,
    group: str,
    objects: Sequence[Obj],
    *,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    now: datetime | None = None,
    api_version: str = "v1",
) -> dict[str, Any]:
    """Build the meta.k8s.io/v1 Table kube-apiserver would answer for these objects.

    `include_object` is the request's includeObject ("None", "Metadata" or "Object");
    anything else raises ValueError. `now` fixes the clock for AGE-like cells (default: the
    current UTC time); `api_version` is the version the objects are served in.
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f"includeObject must be one of {', '.join(INCLUDE_OBJECT_VALUES)}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    printer = printer_for(resource, group)
    ctx = PrintContext(now=now, api_version=api_version)
    metadata = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [column.definition() for column in printer.columns],
        "rows": [_row(printer, obj, ctx, include_object) for obj in objects],
    }
