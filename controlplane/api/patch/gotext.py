"""Go's `%v` and reflect type names for JSON values, so patch errors read like kube-apiserver's.

The strategic-merge-patch errors Kubernetes returns as plain Go errors print the offending
map with `fmt`'s `%v` (`map[name:web ports:[80 443]]`, keys sorted) and name Go types
(`map[string]interface {}`). Clients and users match on these texts, so we render them alike.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def go_value(value: Any) -> str:
    """Render a decoded JSON value the way Go's `fmt.Sprintf("%v", v)` renders it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        items = " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value))
        return f"map[{items}]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def go_type(value: Any) -> str:
    """Name the Go type `encoding/json` decodes this value to, as `reflect.TypeOf` prints it."""
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _go_float(value: float) -> str:
    """`%v` of a float64: shortest digits, exponent form below 1e-4 or from 1e21 on."""
    if not math.isfinite(value):
        return {math.inf: "+Inf", -math.inf: "-Inf"}.get(value, "NaN")
    if value == 0:
        return "0"
    shortest = Decimal(repr(value))
    if not -4 <= shortest.adjusted() < 21:
        return repr(value)
    text = format(shortest, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
