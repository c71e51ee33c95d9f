"""Flag values: Go durations (signed for go_duration, never negative for duration), booleans."""

from __future__ import annotations

import argparse

import pytest

from controlplane.api.flags import boolean, duration, go_duration


def test_go_durations_and_plain_seconds() -> None:
    assert go_duration("1m30s") == 90.0 and go_duration("500ms") == 0.5
    assert go_duration("2h") == 7200.0 and go_duration("1.5") == 1.5
    assert go_duration("-2s") == -2.0


@pytest.mark.parametrize("bad", ["2 minutes", "", "s", "1x", "nan", "inf"])
def test_what_is_not_a_duration(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        go_duration(bad)


def test_periods_are_never_negative() -> None:
    assert duration("15s") == 15.0 and duration("0") == 0.0
    for bad in ("-1s", "-0.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="must not be negative"):
            duration(bad)


def test_booleans() -> None:
    assert boolean("true") and boolean("Yes") and boolean("1")
    assert not boolean("false") and not boolean("0")
    with pytest.raises(argparse.ArgumentTypeError, match="invalid boolean"):
        boolean("maybe")
