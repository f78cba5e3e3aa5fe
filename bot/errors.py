"""The one error table: what every adapter answers for an exception.

Web: the HTTP status, a JSON `{"error"}` and `Retry-After` (starlette's exception handlers).
Chat platforms: the `text` as the bot's answer (PTB's error handler, bolt's `app.error`, the console).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.bot import APOLOGY
from core.errors import InvalidMessage, Unavailable

log = logging.getLogger(__name__)
BUSY = "I am busy with other messages right now. Please try again in a moment."


@dataclass(frozen=True)
class Answer:
    status: int
    error: str  # for APIs
    text: str  # for people
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


def answer(exc: BaseException) -> Answer:
    """Unavailable (busy, loading) and a database that has no room right now (pool timeout, SQLite's
    "database is locked") -> 503 + Retry-After; invalid -> 422 with its reason; else 500 + apology."""
    if isinstance(exc, Unavailable):
        return Answer(503, str(exc), BUSY, exc.retry_after)
    if storage_busy(exc):
        log.warning("the database is busy: %s", exc)
        return Answer(503, "the database is busy, please retry in a moment", BUSY, 1)
    if isinstance(exc, InvalidMessage):
        text = str(exc)
        return Answer(422, text, text[:1].upper() + text[1:] + ".")
    log.error("unexpected error", exc_info=exc)
    return Answer(500, "internal error", APOLOGY)


def storage_busy(exc: BaseException) -> bool:
    """A database error that a retry a moment later gets past (nothing is wrong with the request)."""
    return isinstance(exc, PoolTimeout) or (isinstance(exc, OperationalError) and "database is locked" in str(exc))
