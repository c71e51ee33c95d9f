"""Cron schedule parsing and next activations, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from controlplane.controllers.cronjob.schedule import ScheduleError, parse, zone_of


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("* * * * *", "2025-01-01T12:00:30", "2025-01-01T12:01:00"),
    ("* * * * *", "2025-01-01T12:00:00", "2025-01-01T12:01:00"),
    ("*/15 * * * *", "2025-01-01T12:01:00", "2025-01-01T12:15:00"),
    ("5-10/2 * * * *", "2025-01-01T12:07:00", "2025-01-01T12:09:00"),
    ("30 2 * * *", "2025-01-01T12:00:00", "2025-01-02T02:30:00"),
    ("0 0 1,15 * *", "2025-01-02T00:00:00", "2025-01-15T00:00:00"),
    ("0 0 * FEB *", "2025-03-01T00:00:00", "2026-02-01T00:00:00"),
    ("0 9 * * MON-FRI", "2025-01-03T10:00:00", "2025-01-06T09:00:00"),  # Fri -> Mon
    ("0 0 13 * FRI", "2025-01-01T00:00:00", "2025-01-03T00:00:00"),  # either day field
    ("0 0 29 2 *", "2025-01-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 0 ? * 0", "2025-01-01T00:00:00", "2025-01-05T00:00:00"),
    ("10/20 * * * *", "2025-01-01T12:31:00", "2025-01-01T12:50:00"),
    ("@hourly", "2025-01-01T12:00:00", "2025-01-01T13:00:00"),
    ("@daily", "2025-01-01T12:00:00", "2025-01-02T00:00:00"),
    ("@weekly", "2025-01-01T12:00:00", "2025-01-05T00:00:00"),
    ("@monthly", "2025-01-01T12:00:00", "2025-02-01T00:00:00"),
    ("@yearly", "2025-01-01T12:00:00", "2026-01-01T00:00:00"),
    ("@every 90s", "2025-01-01T12:00:00", "2025-01-01T12:01:30"),
])
def test_next_activation(spec: str, after: str, expected: str) -> None:
    assert parse(spec).next(t(after)) == t(expected)


def test_a_schedule_that_never_fires_has_no_next() -> None:
    assert parse("0 0 31 2 *").next(t("2025-01-01T00:00:00")) is None


def test_next_in_a_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    got = parse("0 9 * * *").next(t("2025-01-01T12:00:00"), berlin)
    assert got is not None and got.astimezone(UTC) == t("2025-01-02T08:00:00")
    summer = parse("0 9 * * *").next(t("2025-07-01T12:00:00"), berlin)
    assert summer is not None and summer.astimezone(UTC) == t("2025-07-02T07:00:00")


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1/2/3 * * * *", "too many slashes: 1/2/3"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("x * * * *", "failed to parse int from x"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("@sometimes", "unrecognized descriptor: @sometimes"),
    ("@every soon", "failed to parse duration @every soon"),
    ("TZ=UTC * * * * *", "use spec.timeZone instead"),
    ("CRON_TZ=Europe/Berlin 0 9 * * *", "use spec.timeZone instead"),
])
def test_bad_schedules_say_why(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("*", r"\*").replace("[", r"\[")
                       .replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        parse(spec)


def test_time_zones() -> None:
    assert zone_of(None) is None
    assert zone_of("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    for bad in ("Mars/Base", "Local", ""):
        with pytest.raises(ScheduleError, match="unknown time zone"):
            zone_of(bad)
