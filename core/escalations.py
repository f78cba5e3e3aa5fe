"""Escalations: the one truth for "escalated" and "with a human" (resolved_at is NULL while open).
Opening one queues its notices in the outbox in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.escalation import EscalationState
from core.events import ConversationKey, utcnow
from core.memory import Conversation
from core.notes import Note
from core.outbox import Delivery


class Escalation(Base):
    """A hand-off to a human; at most one open per conversation."""

    __tablename__ = "escalations"
    __table_args__ = (  # the database itself keeps it to one open escalation, whoever races to open
        Index(
            "uq_escalations_open_per_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    scores: Mapped[list[dict[str, float]]] = mapped_column(JSON)  # the moods that triggered it
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    # the live hand-off: who took the conversation over (the bot is silent there meanwhile), when an
    # agent first wrote to the customer, when an agent last acted, and when idleness was last reported
    taken_by: Mapped[str | None] = mapped_column(String(256))
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    agent_active_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # assignment (core/assignment.py): the agent it is assigned to at which desk, since when, whether
    # they were reminded (the SLA), and how many times it went to the next agent
    assignee: Mapped[str | None] = mapped_column(String(256))
    assignee_desk: Mapped[str | None] = mapped_column(String(512))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_stage: Mapped[int] = mapped_column(default=0, server_default="0")
    reassigned: Mapped[int] = mapped_column(default=0, server_default="0")


@dataclass(frozen=True)
class EscalationRecord:
    id: int
    key: ConversationKey
    reason: str
    scores: list[dict[str, float]]
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    taken_by: str | None = None
    taken_at: datetime | None = None
    first_reply_at: datetime | None = None
    conversation_id: int = 0
    agent_active_at: datetime | None = None
    assignee: str | None = None  # the agent it is assigned to (core/assignment.py), at assignee_desk
    assignee_desk: str | None = None

    @property
    def status(self) -> Status:
        """open (waiting for a person), with_human (taken over: the bot writes nothing), resolved."""
        return "resolved" if self.resolved_at is not None else "with_human" if self.taken_by is not None else "open"

    @property
    def actions(self) -> tuple[Action, ...]:
        """What an agent may still do with it (every desk shows these buttons, and only these)."""
        return ACTIONS[self.status]

    @property
    def with_human(self) -> bool:
        return self.status == "with_human"


Status = Literal["open", "with_human", "resolved"]
Action = Literal["take", "resolve"]
ACTIONS: dict[Status, tuple[Action, ...]] = {"open": ("take", "resolve"), "with_human": ("resolve",), "resolved": ()}


def record_of(row: Escalation, conversation: Conversation) -> EscalationRecord:
    key = ConversationKey(conversation.platform, conversation.chat_id, conversation.thread_id)
    return EscalationRecord(
        row.id, key, row.reason, row.scores, row.opened_at, row.acknowledged_at, row.resolved_at, row.resolved_by,
        row.taken_by, row.taken_at, row.first_reply_at, row.conversation_id, row.agent_active_at, row.assignee,
        row.assignee_desk,
    )  # fmt: skip


class EscalationStore:
    def __init__(self, db: Database) -> None:
        self._session, self.db = db.session, db

    async def state(self, conversation_id: int) -> EscalationState:
        query = select(Escalation.id, Escalation.resolved_at, Escalation.taken_by).filter_by(
            conversation_id=conversation_id
        )
        async with self._session() as session:
            rows = (await session.execute(query.order_by(Escalation.id.desc()).limit(1))).all()
        if not rows:
            return EscalationState()
        [(escalation_id, resolved_at, taken_by)] = rows
        is_open = resolved_at is None
        return EscalationState(
            open=is_open, last_resolved_at=resolved_at, escalation_id=escalation_id if is_open else None,
            with_human=is_open and taken_by is not None,
        )  # fmt: skip

    async def open(self, conversation_id: int, reason: str, scores: list[dict[str, float]], destinations: Sequence[str],
                   held: Mapping[str, datetime] | None = None) -> EscalationRecord | None:  # fmt: skip
        """Open an escalation and queue its notices (those in `held` due at its time); None when one is open."""
        async with self._session() as session, session.begin():
            conversation = await session.get_one(Conversation, conversation_id, with_for_update=True)
            query = select(Escalation.id).filter_by(conversation_id=conversation_id, resolved_at=None)
            if await session.scalar(query) is not None:
                return None
            row = Escalation(conversation_id=conversation_id, reason=reason, scores=scores)
            try:
                async with session.begin_nested():
                    session.add(row)
                    await session.flush()
            except IntegrityError:  # opened meanwhile by another session (the unique index above)
                return None
            session.add_all(Delivery(escalation_id=row.id, destination=d, next_attempt_at=(held or {}).get(d, utcnow()))
                            for d in destinations)  # fmt: skip
            return record_of(row, conversation)

    async def _update(self, escalation_id: int, **values: object) -> EscalationRecord | None:
        """Set the fields that are not set yet (a second resolve keeps the first one's time and name)."""
        async with self._session() as session, session.begin():
            row = await session.get(Escalation, escalation_id)
            if row is None:
                return None
            for name, value in values.items():
                if getattr(row, name) is None:
                    setattr(row, name, value)
            return record_of(row, await session.get_one(Conversation, row.conversation_id))

    async def acknowledge(self, escalation_id: int) -> EscalationRecord | None:
        return await self._update(escalation_id, acknowledged_at=utcnow())

    async def take(self, escalation_id: int, by: str) -> tuple[EscalationRecord | None, bool]:
        """An agent takes the open escalation over: (the escalation, whether this call took it). The
        first taker wins (a double click, two agents, two replicas: one row lock decides)."""
        async with self._session() as session, session.begin():
            row = await session.get(Escalation, escalation_id, with_for_update=True)
            if row is None:
                return None, False
            took = row.taken_by is None and row.resolved_at is None
            if took:
                now = utcnow()
                row.taken_by, row.taken_at, row.agent_active_at = by, now, now
                row.acknowledged_at = row.acknowledged_at or now
            return record_of(row, await session.get_one(Conversation, row.conversation_id)), took

    async def agent_wrote(self, escalation_id: int) -> bool:
        """Note an agent's message: whether it is the first one to the customer in this escalation."""
        async with self._session() as session, session.begin():
            row = await session.get_one(Escalation, escalation_id, with_for_update=True)
            first = row.first_reply_at is None
            row.agent_active_at = utcnow()
            row.first_reply_at = row.first_reply_at or row.agent_active_at
            return first

    async def find(self, destination: str, ref: str) -> EscalationRecord | None:
        """The escalation whose notice (or a relay under it) has this ref at this destination, exactly
        or as one of its comma-separated pieces: how an agent's reply in a desk's thread finds its
        customer (the desk gives the candidate refs, adapters' `escalation_of`)."""
        query = (
            select(Escalation, Conversation)
            .join(Conversation, Conversation.id == Escalation.conversation_id)
            .join(Delivery, Delivery.escalation_id == Escalation.id)
            .where(Delivery.destination == destination)
            .where(
                or_(
                    Delivery.ref == ref,
                    Delivery.ref.startswith(ref + ",", autoescape=True),  # a piece of a text sent in several
                    Delivery.ref.endswith("," + ref, autoescape=True),
                    Delivery.ref.contains("," + ref + ",", autoescape=True),
                )
            )
            .order_by(Escalation.id.desc())
            .limit(1)
        )
        async with self._session() as session:
            found = (await session.execute(query)).tuples().first()
        return record_of(*found) if found else None

    async def resolve(self, escalation_id: int, by: str) -> EscalationRecord | None:
        now = utcnow()
        return await self._update(escalation_id, acknowledged_at=now, resolved_at=now, resolved_by=by)

    async def forget(self, conversation_id: int) -> None:
        """The conversation's user turns are all forgotten: no escalation stays open on an empty
        transcript, and the moods it was opened on go too."""
        async with self._session() as session, session.begin():
            for row in (await session.scalars(select(Escalation).filter_by(conversation_id=conversation_id))).all():
                row.scores = []
                if row.resolved_at is None:
                    row.acknowledged_at = row.acknowledged_at or utcnow()
                    row.resolved_at, row.resolved_by = utcnow(), "forget"

    async def get(self, escalation_id: int) -> EscalationRecord | None:
        async with self._session() as session:
            row = await session.get(Escalation, escalation_id)
            return record_of(row, await session.get_one(Conversation, row.conversation_id)) if row else None

    async def fingerprint(self) -> tuple[object, ...]:
        """Changes whenever an escalation is opened, acknowledged, taken, acted on, resolved or noted on
        (a cheap read, without SQLite's write lock: live views poll it)."""
        query = select(
            func.count(Escalation.id), func.max(Escalation.id), func.max(Escalation.acknowledged_at),
            func.max(Escalation.taken_at), func.max(Escalation.agent_active_at), func.max(Escalation.resolved_at),
            select(func.max(Note.id)).scalar_subquery())  # fmt: skip
        async with self.db.reader() as session:
            return tuple((await session.execute(query)).one())

    async def all(self, open_only: bool = True, limit: int = 100) -> list[EscalationRecord]:
        query = select(Escalation, Conversation).join(Conversation, Conversation.id == Escalation.conversation_id)
        if open_only:
            query = query.where(Escalation.resolved_at.is_(None))
        async with self._session() as session:
            rows = (await session.execute(query.order_by(Escalation.id.desc()).limit(limit))).all()
        return [record_of(e, c) for e, c in rows]
