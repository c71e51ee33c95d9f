"""controlplane.api.quantity: Kubernetes quantity strings to exact values."""

from __future__ import annotations

from fractions import Fraction

import pytest

from controlplane.api import quantity


@pytest.mark.parametrize("text,millis", [
    ("100m", 100), ("1", 1000), ("1.5", 1500), ("0.5m", 1), ("2", 2000), ("250m", 250),
    ("1e3", 1_000_000), ("1E-3", 1), (".5", 500), ("5.", 5000), (2, 2000), (0.25, 250),
])
def test_milli_value(text: str | int | float, millis: int) -> None:
    assert quantity.milli_value(text) == millis


@pytest.mark.parametrize("text,value", [
    ("128Mi", 128 * 1024 ** 2), ("1Gi", 1024 ** 3), ("1G", 10 ** 9), ("1k", 1000),
    ("2Ki", 2048), ("1.5Gi", 3 * 1024 ** 3 // 2), ("100n", 1), ("110", 110), ("1E", 10 ** 18),
    ("1Ei", 1024 ** 6), ("+3", 3), ("-1", -1), ("0", 0),
])
def test_value_rounds_up(text: str, value: int) -> None:
    assert quantity.value(text) == value


def test_exact_fractions() -> None:
    assert quantity.parse("1.5m") == Fraction(3, 2000)
    assert quantity.parse("3e-2") == Fraction(3, 100)


@pytest.mark.parametrize("text", ["", "abc", "1K", "1 ", " 1", "1e", "Mi", "1.2.3", "--1", "1ki"])
def test_rejects_what_apimachinery_rejects(text: str) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(text)
