"""Office hours per desk: when a destination has people, and when it opens next (README "Office
hours"). Weekly hours in the desk's time zone ("mon-fri 09:00-17:30, sat 10:00-14:00"), holidays closed
all day; a desk without hours is always open. Pure: the clock is an argument."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError
from core.settings import HoursSettings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPAN = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(mon|tue|wed|thu|fri|sat|sun))?\s+(\d\d):(\d\d)-(\d\d):(\d\d)$")
Week = dict[int, list[tuple[time, time | None]]]  # weekday -> opening spans (None: until midnight)


def weekly(text: str) -> Week | None:
    """ "mon-fri 09:00-17:30, sat 10:00-14:00" as spans per weekday; None for "" (always open)."""
    if not text.strip():
        return None
    week: Week = {day: [] for day in range(7)}
    for part in filter(None, (p.strip().casefold() for p in text.split(","))):
        if not (found := SPAN.match(part)):
            raise ConfigError(f"office hours: {part!r} is not like 'mon-fri 09:00-17:30'")
        first, last, h1, m1, h2, m2 = found.groups()
        start, end = _clock(h1, m1, part), _clock(h2, m2, part)
        if start is None or (end is not None and end <= start):
            raise ConfigError(f"office hours: {part!r} closes before it opens")
        a, b = DAYS.index(first), DAYS.index(last or first)
        for day in range(a, (b if b >= a else b + 7) + 1):
            week[day % 7].append((start, end))
    return week


def _clock(hours: str, minutes: str, part: str) -> time | None:
    if (hours, minutes) == ("24", "00"):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        raise ConfigError(f"office hours: {part!r} has no such time")
    return time(int(hours), int(minutes))


class Schedule:
    def __init__(self, week: Week | None, zone: ZoneInfo, holidays: Iterable[date]) -> None:
        self.week, self.zone, self.holidays = week, zone, frozenset(holidays)

    def opens(self, at: datetime) -> datetime | None:
        """None when open at `at`; else the next opening time (UTC); None too if it never opens."""
        if self.week is None:
            return None
        local = at.astimezone(self.zone)
        for ahead in range(0, 370):  # a year and some: holidays can close weeks
            day = local.date() + timedelta(days=ahead)
            if day in self.holidays:
                continue
            for start, end in sorted(self.week[day.weekday()]):
                opening = datetime.combine(day, start, self.zone)
                closing = datetime.combine(day + timedelta(days=1), time(0), self.zone) if end is None else (
                    datetime.combine(day, end, self.zone))  # fmt: skip
                if closing <= local:
                    continue
                return None if opening <= local else opening.astimezone(UTC)
        return None


class Hours:
    """Every desk's schedule: `held` says which destinations a page must wait for, and until when."""

    def __init__(self, settings: HoursSettings) -> None:
        try:
            zone = ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"handoff.hours.timezone: no such time zone {settings.timezone!r}") from None
        try:
            holidays = [date.fromisoformat(d) for d in settings.holidays]
        except ValueError as exc:
            raise ConfigError(f"handoff.hours.holidays: {exc}") from None
        self.settings = settings
        self.default = Schedule(weekly(settings.weekly), zone, holidays)
        self.desks = {where: Schedule(weekly(text), zone, holidays) for where, text in settings.desks}

    def opens(self, destination: str, at: datetime) -> datetime | None:
        """When the destination's people are back (UTC), or None when they are there now."""
        return self.desks.get(destination, self.default).opens(at)

    def held(self, destinations: Iterable[str], at: datetime, reason: str) -> dict[str, datetime]:
        """The destinations whose page waits, with the time it goes (none for an urgent reason)."""
        if reason in self.settings.urgent_reasons:
            return {}
        return {where: opens for where in destinations if (opens := self.opens(where, at)) is not None}

    def away(self, destinations: Iterable[str], at: datetime) -> datetime | None:
        """When the first desk opens, if every desk is closed now (else None: someone is there)."""
        opening = [self.opens(where, at) for where in destinations]
        return min(opening) if opening and all(opening) else None  # type: ignore[type-var]

    def when(self, opens: datetime, at: datetime) -> str:
        """An opening time as the customer reads it: "today at 09:00 (Europe/Berlin)", "on Monday at ..."."""
        local, days = opens.astimezone(self.default.zone), (opens.astimezone(self.default.zone).date()
                                                            - at.astimezone(self.default.zone).date()).days  # fmt: skip
        day = {0: "today", 1: "tomorrow"}.get(days) or (f"on {local:%A}" if days < 7 else f"on {local:%A %d %B}")
        return f"{day} at {local:%H:%M} ({self.default.zone.key})"
