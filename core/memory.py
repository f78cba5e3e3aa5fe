"""Conversation memory: conversations, messages (user, assistant, agent turns), the event ledger,
and the history the model sees. SQLAlchemy 2 models; the repository returns plain dataclasses."""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from core import leases
from core.db import Base, Database
from core.events import ChatMessage, ConversationKey, IncomingMessage, Mood, Role, Source, as_utc, utcnow

OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""Who answers an event, in the ledger: this process (this start of it: a restarted container has
the same host name and often the same pid)."""
RECOVERY = f"{OWNER}/recovery"
"""The owner of events this process's recovery claimed: taken over by the answer it then starts."""
NAME = 256  # characters of a display name kept (the column's size: a longer one is cut, not an error)
LEASE = timedelta(minutes=2)
"""How long an event's owner is trusted to be answering it: a redelivery after that takes it over.
(Within one process the conversation's turn lock already orders a redelivery after the answer.)"""


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "thread_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    thread_id: Mapped[str] = mapped_column(String(128), default="")
    # Messages with an id at or below this are outside the model's context (set by /reset).
    context_from: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | agent (a person from support)
    author_id: Mapped[str] = mapped_column(String(128), index=True)
    author_name: Mapped[str] = mapped_column(String(256), default="")
    text: Mapped[str] = mapped_column(Text)
    mood_label: Mapped[str | None] = mapped_column(String(16))
    mood_score: Mapped[float | None] = mapped_column(Float)
    mood_scores: Mapped[dict[str, float] | None] = mapped_column(JSON)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    sources: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)  # a bot turn's knowledge sources
    knowledge: Mapped[str | None] = mapped_column(String(16))  # curated | passages | none (found nothing)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProcessedEvent(Base):
    """The event ledger: one row per event ever accepted, keyed by its conversation (an event id
    sent in one conversation never reaches another's), with who is answering it. A row goes
    answering (owner + lease) -> answered | failed; `accepted` is one left for a retry."""

    __tablename__ = "processed_events"
    __table_args__ = (UniqueConstraint("conversation_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # accepted | answering | answered | failed
    status: Mapped[str] = mapped_column(String(16), default="accepted", index=True)
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    # the outbox for platform sends: the platform's id of the user's message (to reply to it), the
    # ids of what the bot posted for it, in order, and when the answer was wholly delivered
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    sent_ids: Mapped[list[str] | None] = mapped_column(JSON)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class Accepted:
    """An event to answer now: its user turn is stored (before any work starts). `retry` when it
    was accepted before and never answered (the answerer died, the client left, or it failed);
    `text` is the stored turn's, which a redelivery cannot change."""

    conversation_id: int
    message_id: int
    context_from: int
    ledger_id: int
    text: str
    retry: bool = False


@dataclass(frozen=True)
class Seen:
    """An event answered before (`reply` is empty when the bot stayed silent or the turn was forgotten)."""

    reply: str
    mood: Mood | None


@dataclass(frozen=True)
class Owed:
    """An event recovery owes an answer (`reply` None) or the delivery of a stored answer (`reply`,
    and the platform ids of what was posted of it before, to edit instead of posting again)."""

    message: IncomingMessage
    reply: str | None = None
    sent_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredMessage:
    id: int
    role: str
    author_id: str
    text: str
    mood: Mood | None
    created_at: datetime
    author_name: str = ""
    key: ConversationKey | None = None
    knowledge: str | None = None  # a bot turn: curated | passages | none (the knowledge base had no answer)
    sources: tuple[Source, ...] = ()  # a bot turn's knowledge sources


def _stored(row: Message, key: ConversationKey | None = None) -> StoredMessage:
    sources = tuple(Source(**s) for s in row.sources or ())
    return StoredMessage(row.id, row.role, row.author_id, row.text, _mood(row), row.created_at, row.author_name, key,
                         row.knowledge, sources)  # fmt: skip


def _mood(row: Message) -> Mood | None:
    return Mood.from_scores(row.mood_scores) if row.mood_scores else None


class Memory:
    """The repository. Every method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._session = db.session

    @classmethod
    def open(cls, url: str) -> Memory:
        """A Memory on a database of its own (tests, tools); the app shares one Database among its stores."""
        return cls(Database.open(url))

    @property
    def engine(self) -> AsyncEngine:
        return self.db.engine

    async def aclose(self) -> None:
        await self.db.aclose()

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

    def turn_lock(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Orders turns of one conversation across processes (a lease: `core/leases.py`)."""
        return leases.hold(self.db, f"turn\x00{key.platform}\x00{key.chat_id}\x00{key.thread_id}")

    async def accept(self, msg: IncomingMessage) -> Accepted | Seen:
        """Record the event in the ledger and store the user turn; or take over an event accepted
        before and never answered; or report the answer it got. Callers hold the conversation's
        turn lock, so an unanswered event found here has no live answerer."""
        lease = {"status": "answering", "owner": OWNER, "lease_until": utcnow() + LEASE}
        async with self._session() as session, session.begin():
            conversation = await self._conversation(session, msg.key)
            try:
                ledger = await self._insert(session, conversation, msg, attempts=1, **lease)
            except IntegrityError:
                return await self._redelivered(session, conversation, msg.event_id, lease)
            return Accepted(conversation.id, ledger.message_id or 0, conversation.context_from, ledger.id, msg.text)

    async def store(self, msg: IncomingMessage) -> bool:
        """Record the event and its user turn for answering later (the platform is told it arrived
        only after this): False when it was stored before. `accept` then takes it over."""
        async with self._session() as session, session.begin():
            conversation = await self._conversation(session, msg.key)
            try:
                await self._insert(session, conversation, msg, status="accepted", attempts=0)
            except IntegrityError:
                return False
            return True

    async def _insert(
        self, session: AsyncSession, conversation: Conversation, msg: IncomingMessage, **ledger_fields: Any
    ) -> ProcessedEvent:
        """The ledger row and the user turn, in one savepoint (IntegrityError when the event is known)."""
        async with session.begin_nested():
            ledger = ProcessedEvent(
                conversation_id=conversation.id,
                event_id=msg.event_id,
                platform_message_id=msg.message_id or None,
                **ledger_fields,
            )
            session.add(ledger)
            await session.flush()
            turn = Message(
                conversation_id=conversation.id,
                role="user",
                author_id=msg.user_id,
                author_name=msg.user_name[:NAME],
                text=msg.text,
                created_at=msg.received_at,
            )
            session.add(turn)
            await session.flush()
            ledger.message_id = turn.id
        return ledger

    async def _redelivered(
        self, session: AsyncSession, conversation: Conversation, event_id: str, lease: dict[str, Any]
    ) -> Accepted | Seen:
        query = select(ProcessedEvent).filter_by(conversation_id=conversation.id, event_id=event_id)
        ledger = (await session.scalars(query)).one()
        user = await session.get(Message, ledger.message_id) if ledger.message_id else None
        reply = await session.get(Message, ledger.reply_id) if ledger.reply_id else None
        if ledger.status == "answered" or user is None or not self._abandoned(ledger):
            return Seen(reply.text if reply else "", _mood(user) if user else None)
        if reply is not None:  # the apology of a failed attempt makes way for the real answer
            await session.delete(reply)
        retry = ledger.attempts > 0  # else stored by `store` and answered now for the first time
        for name, value in lease.items():
            setattr(ledger, name, value)
        ledger.attempts += 1
        return Accepted(conversation.id, user.id, conversation.context_from, ledger.id, user.text, retry=retry)

    def _abandoned(self, ledger: ProcessedEvent) -> bool:
        """Whether nobody is answering the event: left for a retry (`accepted`), failed, claimed by
        this process's recovery (which answers it now), its owner's lease expired, or owned by
        another process on SQLite (one process per file: it is gone)."""
        if ledger.status != "answering" or ledger.owner == RECOVERY:
            return True
        if ledger.lease_until is None or as_utc(ledger.lease_until) < utcnow():
            return True
        return self.db.dialect == "sqlite" and ledger.owner != OWNER

    def _idle(self, now: datetime) -> ColumnElement[bool]:
        """Ledger rows no live process holds (the SQL twin of `_abandoned`, without the turn lock)."""
        idle = or_(ProcessedEvent.owner.is_(None), ProcessedEvent.lease_until < now)
        if self.db.dialect == "sqlite":
            return or_(idle, ProcessedEvent.owner.not_in((OWNER, RECOVERY)))
        return idle

    async def set_mood(self, message_id: int, mood: Mood) -> None:
        async with self._session() as session, session.begin():
            row = await session.get_one(Message, message_id)
            row.mood_label, row.mood_score, row.mood_scores = mood.label, mood.score, dict(mood.scores)

    async def history(self, accepted: Accepted, limit: int) -> list[ChatMessage]:
        """The turns before the accepted one, oldest first, at most `limit`, since the last reset.
        An answer sits right after the turn it answers (a message stored while the one before was
        being answered has a smaller id than that answer, but comes after it)."""
        turn = func.coalesce(Message.reply_to_id, Message.id)
        query = (
            select(Message.role, Message.text)
            .where(
                Message.conversation_id == accepted.conversation_id,
                Message.id > accepted.context_from,
                turn < accepted.message_id,
            )
            .order_by(turn.desc(), Message.id.desc())
            .limit(limit)
        )
        async with self._session() as session:
            rows = (await session.execute(query)).all()
        turns = [ChatMessage(_role(role), text) for role, text in reversed(rows)]
        while turns and turns[0].role != "user":  # a chat starts with a user turn
            turns.pop(0)
        return turns

    async def record_reply(
        self, accepted: Accepted, text: str, failed: bool, sources: Sequence[Source] = (), knowledge: str | None = None
    ) -> None:
        """Store the bot turn (none when the bot stays silent) with the knowledge it used (`knowledge`:
        curated | passages | none, and its sources) and close the event in the ledger; the caller keeps
        its lease while it delivers the answer (`delivered` ends it)."""
        async with self._session() as session, session.begin():
            ledger = await session.get_one(ProcessedEvent, accepted.ledger_id)
            ledger.status, ledger.lease_until = "failed" if failed else "answered", utcnow() + LEASE
            if text:
                turn = Message(
                    conversation_id=accepted.conversation_id,
                    role="assistant",
                    author_id="tonebot",
                    text=text,
                    reply_to_id=accepted.message_id,
                    sources=[dataclasses.asdict(source) for source in sources] or None,
                    knowledge=knowledge,
                )
                session.add(turn)
                await session.flush()
                ledger.reply_id = turn.id

    async def release(self, accepted: Accepted) -> None:
        """Leave an event nothing was answered for (the model was busy or not running) for a retry:
        the user turn stays stored, and the platform's retry of the same event takes it over."""
        async with self._session() as session, session.begin():
            ledger = await session.get_one(ProcessedEvent, accepted.ledger_id)
            ledger.status, ledger.owner, ledger.lease_until = "accepted", None, None

    async def posted(self, key: ConversationKey, event_id: str, platform_id: str) -> None:
        """Note a message the bot posted on the platform for an event (edited, not posted again, on recovery)."""
        async with self._session() as session, session.begin():
            if (ledger := await self._ledger(session, key, event_id)) is not None:
                ledger.sent_ids = [*(ledger.sent_ids or []), platform_id]

    async def sent_ids(self, key: ConversationKey, event_id: str) -> list[str]:
        """What was posted for an event before (by an attempt that died): edited, not posted again."""
        async with self._session() as session:
            ledger = await self._ledger(session, key, event_id)
            return list(ledger.sent_ids or []) if ledger else []

    async def delivered(self, key: ConversationKey, event_id: str) -> None:
        """The event's answer is wholly on the platform: nothing is owed for it any more."""
        async with self._session() as session, session.begin():
            if (ledger := await self._ledger(session, key, event_id)) is not None:
                ledger.delivered_at, ledger.owner, ledger.lease_until = utcnow(), None, None

    async def unclaim(self, key: ConversationKey, event_id: str) -> None:
        """Give back a claim that could not be worked on now (the model is full): due at the next pass."""
        async with self._session() as session, session.begin():
            if (ledger := await self._ledger(session, key, event_id)) is not None and ledger.owner == RECOVERY:
                ledger.owner, ledger.lease_until = None, None

    async def _ledger(self, session: AsyncSession, key: ConversationKey, event_id: str) -> ProcessedEvent | None:
        query = (
            select(ProcessedEvent)
            .join(Conversation, Conversation.id == ProcessedEvent.conversation_id)
            .where(ProcessedEvent.event_id == event_id, Conversation.platform == key.platform)
            .where(Conversation.chat_id == key.chat_id, Conversation.thread_id == key.thread_id)
        )
        return await session.scalar(query)

    async def claim_owed(
        self, window: timedelta, max_attempts: int, platforms: Sequence[str], limit: int = 100
    ) -> tuple[list[Owed], list[str]]:
        """Claim, for this process, what no live process is doing: events accepted and never
        answered (any platform), and answers not yet delivered (on `platforms`, the ones this process
        can post to), oldest first. Events older than `window`, or tried `max_attempts` times, are
        marked failed instead: returned as "platform:event_id" for the log. On PostgreSQL, rows
        another replica is claiming right now are skipped (FOR UPDATE SKIP LOCKED)."""
        now = utcnow()
        unanswered = ProcessedEvent.status.in_(("accepted", "answering"))
        undelivered = and_(
            ProcessedEvent.status.in_(("answered", "failed")),
            ProcessedEvent.reply_id.is_not(None),
            ProcessedEvent.delivered_at.is_(None),
            Conversation.platform.in_(platforms),
        )
        query = (
            select(ProcessedEvent, Conversation)
            .join(Conversation, Conversation.id == ProcessedEvent.conversation_id)
            .where(or_(unanswered, undelivered), self._idle(now), ProcessedEvent.message_id.is_not(None))
            .order_by(ProcessedEvent.id)
            .limit(limit)
            .with_for_update(of=ProcessedEvent, skip_locked=True)
        )
        owed, given_up = [], []
        async with self._session() as session, session.begin():
            for ledger, conversation in (await session.execute(query)).tuples():
                answered = ledger.status in ("answered", "failed")
                if as_utc(ledger.created_at) < now - window or (not answered and ledger.attempts >= max_attempts):
                    ledger.status, ledger.owner, ledger.lease_until = "failed", None, None
                    ledger.delivered_at = now  # nothing is sent for it any more
                    given_up.append(f"{conversation.platform}:{ledger.event_id}")
                    continue
                user = await session.get_one(Message, ledger.message_id)
                reply = await session.get(Message, ledger.reply_id) if answered and ledger.reply_id else None
                ledger.owner, ledger.lease_until = RECOVERY, now + LEASE
                msg = IncomingMessage(
                    key=ConversationKey(conversation.platform, conversation.chat_id, conversation.thread_id),
                    user_id=user.author_id,
                    user_name=user.author_name,
                    text=user.text,
                    event_id=ledger.event_id,
                    message_id=ledger.platform_message_id or "",
                    received_at=as_utc(user.created_at),
                )
                owed.append(Owed(msg, reply.text if reply else None, tuple(ledger.sent_ids or ())))
        return owed, given_up

    async def reset(self, key: ConversationKey, user_id: str | None = None) -> None:
        """Start a fresh context: earlier turns stay stored but are no longer sent to the model.
        With `user_id`, every conversation in the key's chat that the user wrote in (all its threads)."""
        async with self._session() as session, session.begin():
            if user_id is None:
                conversations = [await self._conversation(session, key)]
            else:
                wrote = select(Message.conversation_id).filter_by(author_id=user_id, role="user")
                query = select(Conversation).filter_by(platform=key.platform, chat_id=key.chat_id)
                conversations = list((await session.scalars(query.where(Conversation.id.in_(wrote)))).all())
            for conversation in conversations:
                last = await session.scalar(select(func.max(Message.id)).filter_by(conversation_id=conversation.id))
                conversation.context_from = last or 0

    async def conversations_of(self, platform: str, user_id: str) -> list[ConversationKey]:
        """Every conversation on a platform the user wrote in."""
        query = (
            select(Conversation)
            .where(Conversation.platform == platform)
            .where(Conversation.id.in_(select(Message.conversation_id).filter_by(author_id=user_id, role="user")))
        )
        async with self._session() as session:
            rows = (await session.scalars(query.order_by(Conversation.id))).all()
        return [ConversationKey(r.platform, r.chat_id, r.thread_id) for r in rows]

    async def forget(
        self,
        key: ConversationKey,
        user_id: str,
        before: Callable[[AsyncSession, int, list[int]], Awaitable[object]] | None = None,
    ) -> tuple[int, int | None]:
        """Delete what a user wrote in one conversation and the bot's answers to it, and when no user
        turn of anyone is left, the agents' turns and hand-off lines too: (how many messages, the
        conversation's id when it was emptied, else None). `before(session, conversation id, ids)` sees
        the ids first (what was sent of them is erased on the platforms)."""
        async with self._session() as session, session.begin():
            conversation = await session.scalar(
                select(Conversation).filter_by(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
            )
            if conversation is None:
                return 0, None
            mine = select(Message.id).filter_by(conversation_id=conversation.id, author_id=user_id, role="user")
            ids = list((await session.scalars(mine)).all())
            answers = select(Message.id).where(Message.reply_to_id.in_(ids))
            ids += list((await session.scalars(answers)).all())
            others = select(Message.id).where(Message.conversation_id == conversation.id, Message.role == "user")
            emptied = await session.scalar(others.where(Message.id.not_in(ids)).limit(1)) is None
            if emptied:  # what the support side said to this user goes with it
                rest = select(Message.id).where(Message.conversation_id == conversation.id, Message.id.not_in(ids))
                ids += list((await session.scalars(rest)).all())
            if before is not None:
                await before(session, conversation.id, ids)
            await session.execute(delete(Message).where(Message.id.in_(ids)))
            return len(ids), conversation.id if emptied else None

    async def scrub(self) -> bool:
        """Leave no deleted text behind in the files: SQLite overwrites deleted content (secure_delete,
        set on connect) and its write-ahead log is checkpointed into the database and truncated.
        False when a reader's snapshot kept part of the log (the text is still in it: try again).
        (On PostgreSQL, deleted rows are gone from queries at once and from disk at the next VACUUM.)"""
        if self.db.dialect != "sqlite":
            return True
        async with self.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            row: Any = (await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        busy, log, done = row[0], row[1], row[2]
        return not busy and log in (done, -1)

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
        return [_stored(r) for r in reversed(rows)]

    async def support_turns(
        self, after: int, platform: str, key: ConversationKey | None = None, authors: Sequence[str] = ()
    ) -> list[StoredMessage]:
        """What support said after the message id `after` on a platform (or in one conversation), oldest
        first, each with its conversation's key: agents' turns, and the lines of `authors` that answer
        no customer turn (hand-off lines, not the bot's replies). How live pages follow conversations on
        whichever replica holds their connection; read without taking SQLite's write lock."""
        query = (
            select(Message, Conversation)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Conversation.platform == platform, Message.id > after)
            .where(or_(Message.role == "agent", and_(Message.author_id.in_(authors), Message.reply_to_id.is_(None))))
            .order_by(Message.id)
            .limit(100)
        )
        if key is not None:
            query = query.where(Conversation.chat_id == key.chat_id, Conversation.thread_id == key.thread_id)
        async with self.db.reader() as session:
            rows = (await session.execute(query)).tuples().all()
        return [_stored(m, ConversationKey(c.platform, c.chat_id, c.thread_id)) for m, c in rows]

    async def unanswered(self, limit: int = 50) -> list[tuple[str, int]]:
        """The questions the knowledge base had no answer for (the gaps), most asked first: (text, times)."""
        question = aliased(Message)
        query = (
            select(func.lower(func.trim(question.text)), func.count())
            .join(Message, Message.reply_to_id == question.id)
            .where(Message.knowledge == "none")
            .group_by(func.lower(func.trim(question.text)))
            .order_by(func.count().desc(), func.lower(func.trim(question.text)))
            .limit(limit)
        )
        async with self.db.reader() as session:
            return [(str(t), int(n)) for t, n in (await session.execute(query)).tuples().all()]

    async def latest_message_id(self) -> int:
        async with self.db.reader() as session:
            return int(await session.scalar(select(func.max(Message.id))) or 0)

    async def message(self, message_id: int) -> StoredMessage | None:
        """One stored turn, with its conversation's key."""
        async with self._session() as session:
            row = await session.get(Message, message_id)
            if row is None:
                return None
            conversation = await session.get_one(Conversation, row.conversation_id)
            return _stored(row, ConversationKey(conversation.platform, conversation.chat_id, conversation.thread_id))

    async def add_turn(
        self,
        conversation_id: int,
        role: Role | str,
        author: tuple[str, str],
        text: str,
        event_id: str,
        then: Callable[[AsyncSession, int], Awaitable[object]] | None = None,
    ) -> int | None:
        """Store a turn nobody answers (an agent's message, a hand-off line to the customer), once per
        `event_id` in its conversation (a redelivery, another replica: None), and in the same
        transaction `then(session, message_id)` (the relays of it, queued in the outbox)."""
        async with self._session() as session, session.begin():
            try:
                async with session.begin_nested():
                    turn = Message(conversation_id=conversation_id, role=role, author_id=author[0],
                                   author_name=author[1][:NAME], text=text)  # fmt: skip
                    session.add(turn)
                    await session.flush()
                    session.add(ProcessedEvent(conversation_id=conversation_id, event_id=event_id, message_id=turn.id,
                                               status="answered", delivered_at=utcnow()))  # fmt: skip
                    await session.flush()
            except IntegrityError:
                return None
            if then is not None:
                await then(session, turn.id)
            return turn.id

    async def last_user_turn_at(self, conversation_id: int) -> datetime | None:
        query = select(func.max(Message.created_at)).filter_by(conversation_id=conversation_id, role="user")
        async with self._session() as session:
            found = await session.scalar(query)
        return as_utc(found) if found else None


def _role(value: str) -> Role:
    return "assistant" if value in ("assistant", "agent") else "user"  # an agent's words are the support side's
