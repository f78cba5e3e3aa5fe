"""The outcome report: what `tonebot report` prints and the console's Insights page draws, from the
episodes (core/outcomes.py) that started in a period. Read with a few plain queries (no ORM rows) and
computed here, so SQLite and PostgreSQL give the same numbers (core/figures.py sums them up). An
episode whose turns were forgotten is kept as its outcome with no content (`Archived`), so it is
still counted; nothing here leaves the deployment."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Float, Select, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.escalations import Escalation
from core.events import as_utc, utcnow
from core.feedback import Feedback, FeedbackStore
from core.figures import Report, summarize
from core.memory import Conversation, Memory, Message
from core.outcomes import Episode, Handoff, Outcome, Turn, episodes, outcome_of

By = Literal["day", "platform", "none"]


async def build(
    memory: Memory, since: datetime, until: datetime, return_hours: float, by: By = "none",
    asks_for_human: Callable[[str], bool] = lambda text: False,
) -> Report:  # fmt: skip
    """The report of the episodes that started in [since, until)."""
    found = await load(memory.db, since - timedelta(hours=return_hours), until, return_hours, asks_for_human)
    found = [(platform, o) for platform, o in found if since <= o.started_at < until]
    buckets: dict[str, list[Outcome]] = defaultdict(list)
    for platform, outcome in found:
        key = {"day": outcome.started_at.date().isoformat(), "platform": platform}.get(by, "")
        buckets[key].append(outcome)
    groups = [summarize(key, outcomes) for key, outcomes in sorted(buckets.items())] if by != "none" else []
    final = (o for _, o in found if o.status not in ("open", "with_person") and not o.forgotten)
    lowest = sorted(final, key=lambda o: o.score)[:10]
    return Report(
        since, until, summarize("all", [o for _, o in found]), groups,
        await memory.unanswered(20, since=since), await FeedbackStore(memory.db).to_review(since),
        [{"started_at": o.started_at.isoformat(), "status": o.status, "score": o.score, "why": o.explanation}
         for o in lowest], found,
    )  # fmt: skip


async def load(
    db: Database, since: datetime, until: datetime, return_hours: float, asks_for_human: Callable[[str], bool]
) -> list[tuple[str, Outcome]]:
    """Every episode of the conversations active in [since, until), with its platform, as of `until`;
    and those of forgotten conversations (`Archived`: counts without content)."""
    active = select(Message.conversation_id).where(Message.created_at >= since, Message.created_at < until).distinct()
    async with db.reader() as session:
        found = await _episodes(session, active, return_hours, until, asks_for_human, since)
        archived = (await session.scalars(select(Archived).where(Archived.started_at >= since,
                                                                 Archived.started_at < until))).all()  # fmt: skip
    return [(platform, outcome) for platform, _, outcome in found] + [(a.platform, a.outcome()) for a in archived]


async def _episodes(
    session: AsyncSession, conversations: Select[Any], return_hours: float, now: datetime,
    asks_for_human: Callable[[str], bool], since: datetime | None = None,
) -> list[tuple[str, Episode, Outcome]]:  # fmt: skip
    """The episodes of these conversations (turns since `since`), with their platform and outcome as of `now`."""
    valence = Message.mood_scores["positive"].as_float() - Message.mood_scores["negative"].as_float()
    columns = (Message.conversation_id, Message.id, Message.role, Message.created_at, valence, Message.mood_label,
               Message.mood_score, Message.knowledge, Message.text)  # fmt: skip
    period = (Message.created_at >= since, Message.created_at < now) if since else ()
    turns_q = select(*columns).where(Message.conversation_id.in_(conversations), *period)
    # a period's escalations by their time alone: PostgreSQL's generic plan for "IN (the active
    # conversations)" here ran a nested loop (2 s for 10,000 conversations, against 12 ms)
    escalated = (Escalation.opened_at >= since, Escalation.opened_at < now) if since else (
        Escalation.conversation_id.in_(conversations),)  # fmt: skip
    handoffs_q = select(Escalation.conversation_id, Escalation.opened_at, Escalation.reason, Escalation.first_reply_at,
                        Escalation.resolved_at).where(*escalated)  # fmt: skip
    feedback_q = select(Feedback.message_id, Feedback.kind, Feedback.value).where(
        Feedback.conversation_id.in_(conversations))  # fmt: skip
    platforms_q = select(Conversation.id, Conversation.platform).where(Conversation.id.in_(conversations))
    rows = (await session.execute(turns_q.order_by(Message.conversation_id, Message.id))).tuples().all()
    handoff_rows = (await session.execute(handoffs_q)).tuples().all()
    feedback: Counter[int] = Counter()
    ratings: dict[int, int] = {}
    for message_id, kind, value in (await session.execute(feedback_q)).tuples():
        if kind == "rating":
            ratings[message_id] = value
        else:
            feedback[message_id] += value
    platforms = dict((await session.execute(platforms_q)).tuples().all())
    # the rest is CPU (~50 us an episode): off the event loop, which keeps answering meanwhile
    return await asyncio.to_thread(_outcomes, rows, handoff_rows, dict(feedback), ratings, platforms, return_hours,
                                   now, asks_for_human)  # fmt: skip


def _outcomes(
    rows: Sequence[Any], handoff_rows: Sequence[Any], feedback: dict[int, int], ratings: dict[int, int],
    platforms: dict[int, str], return_hours: float, now: datetime, asks_for_human: Callable[[str], bool],
) -> list[tuple[str, Episode, Outcome]]:  # fmt: skip
    turns: dict[int, list[Turn]] = defaultdict(list)
    for conversation_id, id_, role, at, valence, label, score, knowledge, text in rows:
        turns[conversation_id].append(Turn(id_, role, as_utc(at), valence, label, score, knowledge, text))
    handoffs: dict[int, list[Handoff]] = defaultdict(list)
    for conversation_id, at, reason, first, resolved in handoff_rows:
        handoffs[conversation_id].append(Handoff(as_utc(at), reason, first and as_utc(first),
                                                 resolved and as_utc(resolved)))  # fmt: skip
    return [
        (platforms.get(conversation_id, ""), episode,
         outcome_of(episode, now, return_hours, feedback, asks_for_human, ratings))
        for conversation_id, found in turns.items()
        for episode in episodes(found, handoffs.get(conversation_id, []), return_hours)
    ]  # fmt: skip


class Archived(Base):
    """The outcome of an episode whose turns were deleted (`/forget`): counted in reports, with no
    text, no person and no conversation to point at."""

    __tablename__ = "forgotten_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(24))
    score: Mapped[int]
    turns: Mapped[int]
    reasons: Mapped[list[str]] = mapped_column(JSON)
    thumbs_up: Mapped[int]
    thumbs_down: Mapped[int]
    first_human_reply_s: Mapped[float | None] = mapped_column(Float)
    handoff_s: Mapped[float | None] = mapped_column(Float)
    grounded: Mapped[bool | None]
    start_valence: Mapped[float | None] = mapped_column(Float)
    end_valence: Mapped[float | None] = mapped_column(Float)

    def outcome(self) -> Outcome:
        return Outcome(
            status=self.status, started_at=as_utc(self.started_at), ended_at=as_utc(self.ended_at),  # type: ignore[arg-type]
            turns=self.turns, score=self.score, parts=(), escalated=bool(self.reasons), reasons=tuple(self.reasons),
            first_human_reply_s=self.first_human_reply_s, handoff_s=self.handoff_s, grounded=self.grounded,
            thumbs=(self.thumbs_up, self.thumbs_down), start_valence=self.start_valence, end_valence=self.end_valence,
            forgotten=True,
        )  # fmt: skip


async def archive(
    session: AsyncSession, conversation_id: int, deleted: Sequence[int], return_hours: float,
    asks_for_human: Callable[[str], bool] = lambda text: False,
) -> int:  # fmt: skip
    """Before `/forget` deletes the turns `deleted`: keep the outcome (no content) of each episode
    that goes with them (all of its customer turns), so reports still count it. How many were kept."""
    gone, kept = set(deleted), 0
    conversation = select(Conversation.id).where(Conversation.id == conversation_id)
    for platform, episode, o in await _episodes(session, conversation, return_hours, utcnow(), asks_for_human):
        if all(t.id in gone for t in episode.turns if t.role == "user"):
            session.add(Archived(platform=platform, started_at=o.started_at, ended_at=o.ended_at, status=o.status,
                                 score=o.score, turns=o.turns, reasons=list(o.reasons), thumbs_up=o.thumbs[0],
                                 thumbs_down=o.thumbs[1], first_human_reply_s=o.first_human_reply_s,
                                 handoff_s=o.handoff_s, grounded=o.grounded, start_valence=o.start_valence,
                                 end_valence=o.end_valence))  # fmt: skip
            kept += 1
    return kept
