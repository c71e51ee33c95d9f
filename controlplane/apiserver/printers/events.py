"""The event printer, for core/v1 Events and events.k8s.io/v1 Events alike.

Owns the LAST SEEN / TYPE / REASON / OBJECT / MESSAGE columns (and the wide SUBOBJECT, SOURCE,
FIRST SEEN, COUNT, NAME). kube-apiserver prints both groups through one internal Event, so an
events.k8s.io object is first converted to the core/v1 Event it is stored as (regarding, note,
deprecated* read as involvedObject, message, ...). Timestamps fall back as kubectl shows them:
lastTimestamp, else firstTimestamp, else eventTime; a series overrides both the last-seen time
and the count.
"""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.apiserver.registry.conversion_events import to_core

from .common import (
    NAME,
    Cell,
    Column,
    Obj,
    PrintContext,
    Printer,
    mapping,
    name_of,
    number,
    parse_time,
    since,
    text,
)

COLUMNS = (
    Column("Last Seen", description="When the event was last observed."),
    Column("Type", description="Type of this event (Normal, Warning)."),
    Column("Reason", description="Short, machine understandable reason for the event."),
    Column("Object", description="The object this event is about."),
    Column("Subobject", priority=1, description="Field path within the involved object."),
    Column("Source", priority=1, description="The component reporting this event."),
    Column("Message", description="A human-readable description of the event."),
    Column("First Seen", priority=1, description="When the event was first observed."),
    Column("Count", priority=1, description="The number of times this event has occurred."),
    Column("Name", priority=1, format="name", description=NAME.description),
)


def _source(event: Obj) -> str:
    source = mapping(event.get("source"))
    component = text(source.get("component")) or text(event.get("reportingController"))
    host = text(source.get("host")) or text(event.get("reportingInstance"))
    return f"{component}, {host}" if host else component


def _target(involved: Obj) -> str:
    kind, name = text(involved.get("kind")).lower(), text(involved.get("name"))
    return f"{kind}/{name}" if name else kind


def _cells(event: Obj, ctx: PrintContext) -> list[Cell]:
    first_raw = event.get("firstTimestamp")
    first = since(first_raw if parse_time(first_raw) else event.get("eventTime"), ctx)
    last_raw = event.get("lastTimestamp")
    last = since(last_raw, ctx) if parse_time(last_raw) else first
    count = number(event.get("count"))
    series = event.get("series")
    if isinstance(series, Mapping):
        last = since(series.get("lastObservedTime"), ctx)
        count = number(series.get("count"))
    elif count == 0:
        count = 1  # singleton events carry no count in the new API
    involved = mapping(event.get("involvedObject"))
    return [
        last,
        text(event.get("type")),
        text(event.get("reason")),
        _target(involved),
        text(involved.get("fieldPath")),
        _source(event),
        text(event.get("message")).strip(),
        first,
        count,
        name_of(event),
    ]


def _events_api_cells(event: Obj, ctx: PrintContext) -> list[Cell]:
    return _cells(to_core(dict(event)), ctx)


PRINTERS = {
    ("", "events"): Printer(COLUMNS, _cells),
    ("events.k8s.io", "events"): Printer(COLUMNS, _events_api_cells),
}
