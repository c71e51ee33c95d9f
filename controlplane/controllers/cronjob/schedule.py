"""Cron schedules as CronJobs spell them (the standard 5-field format Kubernetes parses).

`parse` accepts minute, hour, day of month, month and day of week fields, each a list of
`*`/`?`, numbers or names (JAN-DEC, SUN-SAT), ranges `a-b` and steps `/n`, or one of the
descriptors @yearly/@annually, @monthly, @weekly, @daily/@midnight, @hourly and `@every <dur>`.
A `TZ=`/`CRON_TZ=` prefix is refused: Kubernetes wants `spec.timeZone` instead. As in cron,
when both day fields are restricted a day matching either runs; a `*` in one defers to the
other. `Schedule.next(after)` walks wall-clock time in the schedule's zone, field by field, so
it costs at most a few thousand steps even for a schedule that runs once in years. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {n: i + 1 for i, n in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
               "@hourly": "0 * * * *"}
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 6, DAYS))
_SEARCH_YEARS = 5  # cron gives up on a schedule that never fires within five years
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


class ScheduleError(ValueError):
    """The schedule cannot be parsed; the message is the reason."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the allowed values of each field, or a constant delay."""

    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days: frozenset[int] = frozenset()  # of the month
    months: frozenset[int] = frozenset()
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday
    days_star: bool = False  # day of month was * or ?
    weekdays_star: bool = False
    every: timedelta | None = None  # @every: a constant delay instead of fields

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def next(self, after: datetime, zone: tzinfo | None = None) -> datetime | None:
        """The first activation strictly after `after` (aware), in `zone` (default: after's);
        None when there is none within five years."""
        if self.every is not None:
            step = max(self.every, timedelta(seconds=1))
            return (after + step).replace(microsecond=0) if step.microseconds == 0 else (
                after + step)
        zone = zone or after.tzinfo
        local = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        t = local + timedelta(minutes=1)
        limit = t.year + _SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = datetime(t.year + (t.month == 12), t.month % 12 + 1, 1)
                continue
            if not self._day_matches(t):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = datetime(t.year, t.month, t.day, t.hour) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            candidate = t.replace(tzinfo=zone)
            if candidate > after:
                return candidate
            t += timedelta(minutes=1)
        return None


def parse(spec: str) -> Schedule:
    """Parse a CronJob schedule; raise ScheduleError with cron's reason when it is bad."""
    text = spec.strip()
    if not text:
        raise ScheduleError("empty spec string")
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError("CRON_TZ and TZ are not supported in the schedule, "
                            "use spec.timeZone instead")
    if text.startswith("@"):
        if text.startswith("@every "):
            return Schedule(every=parse_duration(text[len("@every "):].strip()))
        if text not in DESCRIPTORS:
            raise ScheduleError(f"unrecognized descriptor: {text}")
        text = DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: [{text}]")
    values = []
    stars = []
    for field, (low, high, names) in zip(fields, _BOUNDS, strict=True):
        allowed, star = _parse_field(field, low, high, names)
        values.append(frozenset(allowed))
        stars.append(star)
    return Schedule(values[0], values[1], values[2], values[3], values[4],
                    days_star=stars[2], weekdays_star=stars[4])


def _parse_field(field: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    allowed: set[int] = set()
    star = False
    for part in field.split(","):
        values, is_star = _parse_range(part, low, high, names)
        allowed |= values
        star = star or is_star
    return allowed, star


def _parse_range(expr: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    if len(range_and_step) > 2:
        raise ScheduleError(f"too many slashes: {expr}")
    low_and_high = range_and_step[0].split("-")
    if len(low_and_high) > 2:
        raise ScheduleError(f"too many hyphens: {expr}")
    star = False
    if low_and_high[0] in ("*", "?"):
        start, end, star = low, high, True
    else:
        start = _value(low_and_high[0], names)
        end = _value(low_and_high[1], names) if len(low_and_high) == 2 else start
    step = 1
    if len(range_and_step) == 2:
        step = _number(range_and_step[1])
        if len(low_and_high) == 1 and not star:
            end = high  # "N/step" means N-max/step
        if step > 1:
            star = False
        if step <= 0:
            raise ScheduleError(f"step of range should be a positive number: {expr}")
    if start < low:
        raise ScheduleError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ScheduleError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    return set(range(start, end + 1, step)), star


def _value(text: str, names: dict[str, int]) -> int:
    named = names.get(text.lower())
    return named if named is not None else _number(text)


def _number(text: str) -> int:
    if not text.isdigit():
        raise ScheduleError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": '
                            "invalid syntax")
    return int(text)


def parse_duration(text: str) -> timedelta:
    """A Go duration ("1h30m", "90s"); raise ScheduleError when it is not one."""
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ScheduleError(f"failed to parse duration @every {text}: time: invalid duration "
                            f'"{text}"')
    return timedelta(seconds=total)


def zone_of(name: str | None) -> tzinfo | None:
    """The zone `spec.timeZone` names (None when unset: the controller's UTC); raise
    ScheduleError when it is unknown."""
    if name is None:
        return None
    if not name or name.lower() == "local":
        raise ScheduleError(f"unknown time zone {name}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name}") from None
