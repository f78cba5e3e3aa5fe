"""Conversation storage: SQLAlchemy 2 models and a repository that returns plain dataclasses."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.escalation import EscalationState
from core.events import ChatMessage, ConversationKey, IncomingMessage, Mood, Role, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "thread_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    thread_id: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="bot")  # bot | escalated | resolved
    # Messages with an id at or below this are outside the model's context (set by /reset).
    context_from: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    author_id: Mapped[str] = mapped_column(String(128), index=True)
    author_name: Mapped[str] = mapped_column(String(256), default="")
    text: Mapped[str] = mapped_column(Text)
    mood_label: Mapped[str | None] = mapped_column(String(16))
    mood_score: Mapped[float | None] = mapped_column(Float)
    mood_scores: Mapped[dict[str, float] | None] = mapped_column(JSON)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProcessedEvent(Base):
    """The dedupe ledger: one row per platform event ever accepted."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="accepted")  # accepted | answered | failed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Escalation(Base):
    """A hand-off to a human; at most one open (resolved_at is NULL) per conversation."""

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


class Delivery(Base):
    """One notification of an escalation to one destination; failed ones are retried, never lost."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    escalation_id: int
    destination: str
    status: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class Accepted:
    """A new event, stored: the user turn is safe before any work starts."""

    conversation_id: int
    message_id: int
    context_from: int
    status: str = "bot"


@dataclass(frozen=True)
class Seen:
    """An event that was accepted before; `reply` is empty while it is still being answered."""

    reply: str
    mood: Mood | None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    author_id: str
    text: str
    mood: Mood | None
    created_at: datetime


def async_url(url: str) -> str:
    """Accept any SQLAlchemy URL; plain sqlite / postgresql URLs get their asyncio driver."""
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    parsed = make_url(url)
    return parsed.set(drivername=drivers.get(parsed.drivername, parsed.drivername)).render_as_string(
        hide_password=False
    )


def ensure_sqlite_dir(url: str) -> None:
    """A SQLite file may live in a directory that does not exist yet (data/ on a fresh clone)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    ensure_sqlite_dir(url)
    engine = create_async_engine(url)
    if make_url(url).get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _mood(row: Message) -> Mood | None:
    return Mood.from_scores(row.mood_scores) if row.mood_scores else None


class Memory:
    """The repository. Every method is one short transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._session = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Memory:
        return cls(create_engine(url))

    async def aclose(self) -> None:
        await self.engine.dispose()

    async def _conversation(self, session: AsyncSession, key: ConversationKey) -> Conversation:
        query = select(Conversation).filter_by(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
        if found := await session.scalar(query):
            return found
        try:
            async with session.begin_nested():
                conversation = Conversation(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
                session.add(conversation)
            return conversation
        except IntegrityError:  # created meanwhile by another worker
            return (await session.scalars(query)).one()

    @asynccontextmanager
    async def turn_lock(self, key: ConversationKey) -> AsyncIterator[None]:
        """Orders turns of one conversation across processes: a PostgreSQL session advisory lock,
        held on its own autocommit connection for the turn. Elsewhere (SQLite: one process) the
        Bot's in-process lock is all there is."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        digest = hashlib.blake2b(f"{key.platform}\x00{key.chat_id}\x00{key.thread_id}".encode(), digest_size=8).digest()
        lock_id = int.from_bytes(digest, "big", signed=True)
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})

    async def accept(self, msg: IncomingMessage) -> Accepted | Seen:
        """Record the event in the ledger and store the user turn, or report that it was seen."""
        async with self._session() as session, session.begin():
            conversation = await self._conversation(session, msg.key)
            try:
                async with session.begin_nested():
                    ledger = ProcessedEvent(platform=msg.platform, event_id=msg.event_id)
                    session.add(ledger)
            except IntegrityError:
                return await self._seen(session, msg)
            turn = Message(
                conversation_id=conversation.id,
                role="user",
                author_id=msg.user_id,
                author_name=msg.user_name,
                text=msg.text,
                created_at=msg.received_at,
            )
            session.add(turn)
            await session.flush()
            ledger.message_id = turn.id
            return Accepted(conversation.id, turn.id, conversation.context_from, conversation.status)

    async def _seen(self, session: AsyncSession, msg: IncomingMessage) -> Seen:
        ledger = (
            await session.scalars(select(ProcessedEvent).filter_by(platform=msg.platform, event_id=msg.event_id))
        ).one()
        user = await session.get(Message, ledger.message_id) if ledger.message_id else None
        reply = await session.get(Message, ledger.reply_id) if ledger.reply_id else None
        return Seen(reply.text if reply else "", _mood(user) if user else None)

    async def set_mood(self, message_id: int, mood: Mood) -> None:
        async with self._session() as session, session.begin():
            row = await session.get_one(Message, message_id)
            row.mood_label, row.mood_score, row.mood_scores = mood.label, mood.score, dict(mood.scores)

    async def history(self, accepted: Accepted, limit: int) -> list[ChatMessage]:
        """The turns before the accepted one, oldest first, at most `limit`, since the last reset."""
        query = (
            select(Message.role, Message.text)
            .where(
                Message.conversation_id == accepted.conversation_id,
                Message.id > accepted.context_from,
                Message.id < accepted.message_id,
            )
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._session() as session:
            rows = (await session.execute(query)).all()
        turns = [ChatMessage(_role(role), text) for role, text in reversed(rows)]
        while turns and turns[0].role != "user":  # a chat starts with a user turn
            turns.pop(0)
        return turns

    async def record_reply(self, msg: IncomingMessage, accepted: Accepted, text: str, failed: bool) -> None:
        """Store the bot turn (none when the bot stays silent) and close the event in the ledger."""
        async with self._session() as session, session.begin():
            query = select(ProcessedEvent).filter_by(platform=msg.platform, event_id=msg.event_id)
            ledger = (await session.scalars(query)).one()
            ledger.status = "failed" if failed else "answered"
            if text:
                turn = Message(
                    conversation_id=accepted.conversation_id,
                    role="assistant",
                    author_id="tonebot",
                    text=text,
                    reply_to_id=accepted.message_id,
                )
                session.add(turn)
                await session.flush()
                ledger.reply_id = turn.id

    async def reset(self, key: ConversationKey) -> None:
        """Start a fresh context: earlier turns stay stored but are no longer sent to the model."""
        async with self._session() as session, session.begin():
            conversation = await self._conversation(session, key)
            last = await session.scalar(select(func.max(Message.id)).filter_by(conversation_id=conversation.id))
            conversation.context_from = last or 0

    async def forget(self, platform: str, user_id: str) -> int:
        """Delete everything a user wrote on a platform, and the bot's answers to it. Returns the count."""
        mine = (
            select(Message.id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.platform == platform, Message.author_id == user_id, Message.role == "user")
        )
        async with self._session() as session, session.begin():
            ids = list((await session.scalars(mine)).all())
            if not ids:
                return 0
            answers = await session.execute(delete(Message).where(Message.reply_to_id.in_(ids)))
            await session.execute(delete(Message).where(Message.id.in_(ids)))
            return len(ids) + int(answers.rowcount or 0)  # type: ignore[attr-defined]

    async def knows(self, key: ConversationKey) -> bool:
        """Whether the conversation exists, i.e. the bot has taken part in it."""
        query = select(Conversation.id).filter_by(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
        async with self._session() as session:
            return await session.scalar(query) is not None

    async def moods(self, platform: str, user_id: str, limit: int) -> list[Mood]:
        """The moods of a user's latest messages on a platform, oldest first."""
        return await self._moods(limit, Conversation.platform == platform, Message.author_id == user_id)

    async def conversation_moods(self, conversation_id: int, user_id: str, limit: int) -> list[Mood]:
        """The moods of a user's latest messages in one conversation, oldest first."""
        return await self._moods(limit, Message.conversation_id == conversation_id, Message.author_id == user_id)

    async def _moods(self, limit: int, *where: Any) -> list[Mood]:
        query = (
            select(Message.mood_scores)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(*where, Message.role == "user", Message.mood_scores.is_not(None))
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._session() as session:
            rows = (await session.scalars(query)).all()
        return [Mood.from_scores(scores) for scores in reversed(rows) if scores]

    async def messages(self, key: ConversationKey, limit: int = 100) -> list[StoredMessage]:
        """The latest stored messages of a conversation, oldest first."""
        query = (
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.platform == key.platform, Conversation.chat_id == key.chat_id)
            .where(Conversation.thread_id == key.thread_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._session() as session:
            rows: Sequence[Message] = (await session.scalars(query)).all()
        return [StoredMessage(r.id, r.role, r.author_id, r.text, _mood(r), r.created_at) for r in reversed(rows)]


def _role(value: str) -> Role:
    return "assistant" if value == "assistant" else "user"


def _escalation(row: Escalation, conversation: Conversation) -> EscalationRecord:
    key = ConversationKey(conversation.platform, conversation.chat_id, conversation.thread_id)
    return EscalationRecord(
        row.id, key, row.reason, row.scores, row.opened_at, row.acknowledged_at, row.resolved_at, row.resolved_by
    )


class EscalationStore:
    """Escalations and their deliveries; the same database and sessions as Memory."""

    def __init__(self, memory: Memory) -> None:
        self._session = memory._session

    async def state(self, conversation_id: int) -> EscalationState:
        query = select(Escalation.opened_at, Escalation.resolved_at).filter_by(conversation_id=conversation_id)
        async with self._session() as session:
            rows = (await session.execute(query.order_by(Escalation.id.desc()).limit(1))).all()
        if not rows:
            return EscalationState()
        _, resolved_at = rows[0]
        return EscalationState(open=resolved_at is None, last_resolved_at=resolved_at)

    async def open(
        self, conversation_id: int, reason: str, scores: list[dict[str, float]], destinations: Sequence[str]
    ) -> EscalationRecord | None:
        """Open an escalation and queue its notifications; None when one is already open."""
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
            conversation.status = "escalated"
            session.add_all(Delivery(escalation_id=row.id, destination=d) for d in destinations)
            return _escalation(row, conversation)

    async def _update(self, escalation_id: int, **values: object) -> EscalationRecord | None:
        async with self._session() as session, session.begin():
            row = await session.get(Escalation, escalation_id)
            if row is None:
                return None
            conversation = await session.get_one(Conversation, row.conversation_id)
            for name, value in values.items():
                if name == "status":
                    conversation.status = str(value)
                elif getattr(row, name) is None:
                    setattr(row, name, value)
            return _escalation(row, conversation)

    async def acknowledge(self, escalation_id: int) -> EscalationRecord | None:
        return await self._update(escalation_id, acknowledged_at=utcnow())

    async def resolve(self, escalation_id: int, by: str) -> EscalationRecord | None:
        now = utcnow()
        return await self._update(
            escalation_id, acknowledged_at=now, resolved_at=now, resolved_by=by, status="resolved"
        )

    async def get(self, escalation_id: int) -> EscalationRecord | None:
        async with self._session() as session:
            row = await session.get(Escalation, escalation_id)
            return _escalation(row, await session.get_one(Conversation, row.conversation_id)) if row else None

    async def all(self, open_only: bool = True, limit: int = 100) -> list[EscalationRecord]:
        query = select(Escalation, Conversation).join(Conversation, Conversation.id == Escalation.conversation_id)
        if open_only:
            query = query.where(Escalation.resolved_at.is_(None))
        async with self._session() as session:
            rows = (await session.execute(query.order_by(Escalation.id.desc()).limit(limit))).all()
        return [_escalation(e, c) for e, c in rows]

    async def claim_due(self, lease_seconds: float = 120.0) -> list[DeliveryRecord]:
        """The pending deliveries that are due, claimed for this caller: they are not due again for
        anyone (another replica included) until `lease_seconds` pass or `delivered` reschedules them.
        On PostgreSQL, rows another replica is claiming right now are skipped (SKIP LOCKED)."""
        now = utcnow()
        query = (
            select(Delivery)
            .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
            .order_by(Delivery.id)
            .with_for_update(skip_locked=True)
        )
        async with self._session() as session, session.begin():
            rows = (await session.scalars(query)).all()
            for row in rows:
                row.next_attempt_at = now + timedelta(seconds=lease_seconds)
            return [_delivery(r) for r in rows]

    async def deliveries(self, escalation_id: int) -> list[DeliveryRecord]:
        async with self._session() as session:
            rows = (await session.scalars(select(Delivery).filter_by(escalation_id=escalation_id))).all()
        return [_delivery(r) for r in rows]

    async def delivered(self, delivery_id: int, error: str | None, retry_in: float) -> None:
        """Record one attempt: sent when `error` is None, otherwise due again in `retry_in` seconds."""
        async with self._session() as session, session.begin():
            row = await session.get_one(Delivery, delivery_id)
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "sent", utcnow(), None
            else:
                row.last_error, row.next_attempt_at = error[:2000], utcnow() + timedelta(seconds=retry_in)


def _delivery(row: Delivery) -> DeliveryRecord:
    return DeliveryRecord(row.id, row.escalation_id, row.destination, row.status, row.attempts, row.last_error)
