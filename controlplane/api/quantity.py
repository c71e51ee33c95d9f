"""resource.Quantity: parse Kubernetes quantities ("100m", "1.5", "128Mi", "1G", "1e3") exactly.

A quantity is a decimal number with an optional suffix: binary SI (Ki Mi Gi Ti Pi Ei, powers of
1024), decimal SI (n u m "" k M G T P E, powers of 1000) or a decimal exponent (e3, E-2). Values
are kept as exact fractions; `value` and `milli_value` round up as apimachinery's Value() and
MilliValue() do, so "0.5m" of cpu is 1 millicore and "100n" bytes is 1 byte. JSON numbers (the
`pods: 110` some clients write) are accepted as well.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_FORMAT = re.compile(r"([+-]?)([0-9]+\.?[0-9]*|\.[0-9]+)(.*)", re.DOTALL)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
FORMAT_ERROR = ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


class QuantityError(ValueError):
    """Not a quantity; the message is apimachinery's."""


def parse(text: str | int | float) -> Fraction:
    """The exact value of a quantity string (or JSON number)."""
    if isinstance(text, bool):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise QuantityError(FORMAT_ERROR)
        return Fraction(str(text))
    if not isinstance(text, str):
        raise QuantityError(FORMAT_ERROR)
    found = _FORMAT.fullmatch(text.strip()) if text.strip() == text else None
    if found is None:
        raise QuantityError(FORMAT_ERROR)
    sign, number, suffix = found.groups()
    value = Fraction(number if not number.endswith(".") else number[:-1] or "0")
    if suffix in _BINARY:
        value *= 1024 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= Fraction(10) ** _DECIMAL[suffix]
    elif (exponent := _EXPONENT.fullmatch(suffix)) is not None:
        value *= Fraction(10) ** int(exponent.group(1))
    else:
        raise QuantityError("unable to parse quantity's suffix")
    return -value if sign == "-" else value


def _ceil(value: Fraction) -> int:
    return math.ceil(value) if value >= 0 else -math.ceil(-value)


def value(text: str | int | float) -> int:
    """The quantity as an integer, rounded up (bytes, pods, devices)."""
    return _ceil(parse(text))


def milli_value(text: str | int | float) -> int:
    """The quantity in thousandths, rounded up (millicores of cpu)."""
    return _ceil(parse(text) * 1000)
