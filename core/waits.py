"""An honest wait: how long a customer can expect to wait for a person, from how long people took
(the first agent reply after each escalation opened) at this weekday and hour in the desks' time
zone; escalations opened out of hours are left out (their wait is the night, not the team)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from core.db import Database
from core.escalations import Escalation
from core.events import as_utc
from core.hours import Hours
from core.settings import HandoffSettings

HISTORY = 2000  # the latest answered escalations looked at
ENOUGH = 3  # samples that make a median worth telling


async def expected_minutes(
    db: Database, hours: Hours, settings: HandoffSettings, destinations: Sequence[str], at: datetime
) -> float | None:
    """The median minutes to a first human reply for an escalation opened at `at`, or the default."""
    query = (
        select(Escalation.opened_at, Escalation.first_reply_at)
        .where(Escalation.first_reply_at.is_not(None))
        .order_by(Escalation.id.desc())
        .limit(HISTORY)
    )
    async with db.reader() as session:
        rows = (await session.execute(query)).all()
    zone, here = hours.default.zone, at.astimezone(hours.default.zone)
    samples: list[tuple[datetime, float]] = []
    for opened, replied in rows:
        opened = as_utc(opened)
        if replied is not None and hours.away(destinations, opened) is None:
            samples.append((opened.astimezone(zone), (as_utc(replied) - opened).total_seconds() / 60))
    for alike in (lambda t: (t.weekday(), t.hour) == (here.weekday(), here.hour), lambda t: t.hour == here.hour,
                  lambda t: True):  # fmt: skip
        waits = [minutes for opened, minutes in samples if alike(opened)][: settings.wait_samples]
        if len(waits) >= ENOUGH:
            return statistics.median(waits)
    return settings.default_wait_minutes or None


def spoken(minutes: float) -> str:
    """ "5 minutes", "about 20 minutes", "about 2 hours": rounded up, as a customer reads it."""
    if minutes <= 5:
        return "5 minutes"
    if minutes <= 55:
        return f"about {-(-minutes // 5) * 5:.0f} minutes"
    hours = -(-minutes // 30) / 2
    return f"about {hours:g} hour{'s' if hours > 1 else ''}"
