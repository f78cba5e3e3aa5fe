"""The last week's outcomes, kept at hand: recomputed in the background every `refresh_seconds`
(the Prometheus gauges and a log line with it), so the console's Insights page opens at once and
`/metrics` carries the rates; any other period is computed when asked (core/reports.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from core import metrics
from core.errors import InvalidMessage
from core.events import utcnow
from core.figures import Report
from core.memory import Memory
from core.outcomes import STATUSES
from core.reports import By, build
from core.settings import OutcomeSettings

log = logging.getLogger(__name__)
WEEK = "7d"
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since_of(text: str, now: datetime) -> datetime:
    """'7d', '24h', '90m', '2w' before now, or a date / time (ISO 8601, UTC unless it says)."""
    if found := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*", text):
        return now - timedelta(**{UNITS[found[2]]: float(found[1])})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidMessage(f"since {text!r}: give a span like 7d, 24h, 2w or a date like 2026-12-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=now.tzinfo)


class Insights:
    def __init__(self, memory: Memory, settings: OutcomeSettings, asks_for_human: Callable[[str], bool]) -> None:
        self.memory, self.settings, self.asks_for_human = memory, settings, asks_for_human
        self._week: tuple[float, Report] | None = None  # (when computed, monotonic), the last week's by day
        self._logged_until = utcnow()  # episodes settled since then get their log line at the next refresh

    async def report(self, since: str = WEEK, by: By = "day") -> Report:
        """The report since `since`, by day or platform: the last week's as computed at most
        `refresh_seconds` ago, any other now."""
        if (
            since == WEEK
            and by == "day"
            and self._week
            and time.monotonic() - self._week[0] < self.settings.refresh_seconds
        ):
            return self._week[1]
        now = utcnow()
        found = await build(self.memory, since_of(since, now), now, self.settings.return_hours, by, self.asks_for_human)
        if since == WEEK and by == "day":
            self._week = (time.monotonic(), found)
        return found

    async def refresh(self) -> Report:
        """Compute the last week's now; update the gauges; one log line with the figures."""
        self._week = None
        found = await self.report()
        total = found.total
        for status in STATUSES:
            metrics.OUTCOMES.labels(status).set(total.outcomes[status])
        metrics.SATISFACTION.set(total.score_mean if total.score_mean is not None else float("nan"))
        log.info("outcomes of the last 7 days", extra={"conversations": total.conversations, **total.outcomes,
                 "satisfaction_mean": round(total.score_mean, 1) if total.score_mean is not None else None,
                 "thumbs_up": total.thumbs_up, "thumbs_down": total.thumbs_down})  # fmt: skip
        self._log_settled(found)
        return found

    def _log_settled(self, found: Report) -> None:
        """A line per episode whose outcome became final since the last refresh (`return_hours` after
        its last turn): the outcome, score and why (moods and counts, no text), for log pipelines."""
        now, wait = utcnow(), timedelta(hours=self.settings.return_hours)
        for platform, o in found.episodes:
            if (
                o.status not in ("open", "with_person")
                and not o.forgotten
                and self._logged_until < o.ended_at + wait <= now
            ):
                log.info("conversation outcome", extra={
                    "platform": platform, "outcome": o.status, "score": o.score, "why": o.explanation,
                    "turns": o.turns, "escalated": o.escalated, "reasons": list(o.reasons), "thumbs_up": o.thumbs[0],
                    "thumbs_down": o.thumbs[1], "rating": o.rating, "first_human_reply_s": o.first_human_reply_s,
                    "grounded": o.grounded, "started_at": o.started_at.isoformat()})  # fmt: skip
        self._logged_until = now

    async def run(self) -> None:
        """Refresh every `refresh_seconds` until cancelled (a failed round is logged and retried)."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("outcomes: the report could not be computed; trying again later")
            await asyncio.sleep(self.settings.refresh_seconds)
