"""Building blocks shared by the server-side printers: column and printer types, time, labels.

Owns the `Column`/`Printer` records each API-group module registers, the kubectl-compatible
time strings (apimachinery's `HumanDuration` and the printers' `translateTimestampSince`),
RFC3339 parsing, and the label, selector and container formatters several printers share.
Everything here is pure: the clock arrives as `PrintContext.now`, so a row is a function of
(object, now) only, and objects are plain wire dicts read defensively (a missing or mistyped
field reads as Go's zero value, never raises).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Obj = Mapping[str, Any]
Cell = str | int | bool


@dataclass(frozen=True)
class Column:
    """One meta.k8s.io/v1 TableColumnDefinition; priority 1 columns show only with `-o wide`."""

    name: str
    type: str = "string"
    priority: int = 0
    format: str = ""
    description: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class PrintContext:
    """What a row may depend on besides the object: the clock and the served API version."""

    now: datetime
    api_version: str = "v1"


@dataclass(frozen=True)
class Printer:
    """Columns plus the function that turns one object into the matching cells (wide included)."""

    columns: tuple[Column, ...]
    cells: Callable[[Obj, PrintContext], list[Cell]]
    conditions: Callable[[Obj], list[dict[str, str]]] | None = None


NAME = Column("Name", format="name", description="Name of the object, unique within its scope.")
AGE = Column("Age", description="Time since the object's creationTimestamp.")
CONTAINERS = Column("Containers", priority=1, description="Names of the template's containers.")
IMAGES = Column("Images", priority=1, description="Images of the template's containers.")


def selector_column(description: str = "Label selector of the object.") -> Column:
    return Column("Selector", priority=1, description=description)


# --- defensive readers: Go zero values for anything missing or mistyped -----------------------


def mapping(value: object) -> Obj:
    return value if isinstance(value, Mapping) else {}


def dig(obj: object, *keys: str) -> Any:
    """Return obj[k1][k2]..., or None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def items(value: object) -> list[Obj]:
    """Return the mappings in a list field (non-mapping entries are skipped)."""
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def number(value: object, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def name_of(obj: Obj) -> str:
    return text(dig(obj, "metadata", "name"))


# --- time -------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_time(value: object) -> datetime | None:
    """Parse an RFC3339 timestamp (`Z` or `±hh:mm`, any fraction digits) into an aware UTC time."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         micros, tzinfo=UTC)
    except ValueError:
        return None
    return local - offset


def human_duration(d: timedelta) -> str:
    """Render a duration with ~2-3 significant figures, exactly as apimachinery's HumanDuration.

    Up to 1s in the future reads as "0s" (clock skew tolerance); further ahead is "<invalid>".
    """
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = micros // 1_000_000 if micros >= 0 else -(-micros // 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{hours // 24 // 365}y"


def since(value: object, ctx: PrintContext) -> str:
    """Age of a timestamp as translateTimestampSince: "<unknown>" when it is absent."""
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    return human_duration(ctx.now - moment)


def age(obj: Obj, ctx: PrintContext) -> str:
    return since(dig(obj, "metadata", "creationTimestamp"), ctx)


def rfc3339(value: object) -> str:
    """Format a timestamp as Go's time.RFC3339 in UTC; absent is Go's zero time."""
    moment = parse_time(value)
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- labels, selectors, containers, lists -----------------------------------------------------


def format_labels(labels: object) -> str:
    """Render a label map as sorted `k=v,k=v`, or "<none>" (labels.FormatLabels)."""
    pairs = sorted(mapping(labels).items())
    if not pairs:
        return "<none>"
    return ",".join(f"{key}={value}" for key, value in pairs)


_SET_OPERATORS = {"In": "in", "NotIn": "notin"}


def selector_string(selector: object) -> str | None:
    """Render a LabelSelector as its labels.Selector string; None when an operator is invalid."""
    sel = mapping(selector)
    requirements: list[tuple[str, str]] = []
    for key, value in mapping(sel.get("matchLabels")).items():
        requirements.append((key, f"{key}={value}"))
    for expr in items(sel.get("matchExpressions")):
        key, operator = text(expr.get("key")), expr.get("operator")
        values = sorted(str(v) for v in expr.get("values") or [])
        if operator in _SET_OPERATORS:
            requirements.append((key, f"{key} {_SET_OPERATORS[operator]} ({','.join(values)})"))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            return None
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(rendered for _, rendered in requirements)


def format_label_selector(selector: object) -> str:
    """Render a LabelSelector for display: "<none>" when empty, "<error>" when invalid."""
    rendered = selector_string(selector)
    if rendered is None:
        return "<error>"
    return rendered or "<none>"


def container_cells(pod_spec: object) -> tuple[str, str]:
    """Return the comma-joined container names and images of a pod spec."""
    containers = items(mapping(pod_spec).get("containers"))
    names = ",".join(text(c.get("name")) for c in containers)
    images = ",".join(text(c.get("image")) for c in containers)
    return names, images


def template_cells(obj: Obj) -> tuple[str, str]:
    return container_cells(dig(obj, "spec", "template", "spec"))


def list_with_more(values: Iterable[str], *, limit: int = 3, empty: str = "<unset>") -> str:
    """Join the first `limit` values and say how many more there were ("a,b,c + 2 more...")."""
    every = list(values)
    shown = ",".join(every[:limit])
    if len(every) > limit:
        return f"{shown} + {len(every) - limit} more..."
    return shown or empty
