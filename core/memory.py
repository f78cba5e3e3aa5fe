"""Conversation memory: conversations, messages (user, assistant, agent turns), and the history the
model sees. SQLAlchemy 2 models; the repository returns plain dataclasses. Which event each turn
came from, and whether it was answered and delivered, is the ledger's (core/ledger.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
from core.events import ChatMessage, ConversationKey, Mood, Role, Source, as_utc, utcnow

NAME = 256  # characters of a display name kept (the column's size: a longer one is cut, not an error)


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
    # the platform's opaque reference for sending here later (IncomingMessage.ref), the latest one seen
    ref: Mapped[str | None] = mapped_column(Text)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


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
    return StoredMessage(row.id, row.role, row.author_id, row.text, mood_of(row), row.created_at, row.author_name, key,
                         row.knowledge, sources)  # fmt: skip


def mood_of(row: Message) -> Mood | None:
    return Mood.from_scores(row.mood_scores) if row.mood_scores else None


async def conversation_row(session: AsyncSession, key: ConversationKey, ref: str = "") -> Conversation:
    """The conversation's row, made on first use (or found, when another worker made it meanwhile);
    with the platform's latest `ref` for it."""
    query = select(Conversation).filter_by(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
    conversation = await session.scalar(query)
    if conversation is None:
        try:
            async with session.begin_nested():
                conversation = Conversation(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
                session.add(conversation)
        except IntegrityError:  # created meanwhile by another worker
            conversation = (await session.scalars(query)).one()
    if ref and conversation.ref != ref:
        conversation.ref = ref
    return conversation


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

    def turn_lock(self, key: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Orders turns of one conversation across processes (a lease: `core/leases.py`)."""
        return leases.hold(self.db, f"turn\x00{key.platform}\x00{key.chat_id}\x00{key.thread_id}")

    async def set_mood(self, message_id: int, mood: Mood) -> None:
        async with self._session() as session, session.begin():
            row = await session.get_one(Message, message_id)
            row.mood_label, row.mood_score, row.mood_scores = mood.label, mood.score, dict(mood.scores)

    async def history(self, conversation_id: int, context_from: int, before: int, limit: int) -> list[ChatMessage]:
        """The turns before the accepted one, oldest first (a customer's with its mood), at most `limit`,
        since the last reset. An answer sits right after the turn it answers (a message stored while the
        one before was being answered has a smaller id than that answer, but comes after it)."""
        turn = func.coalesce(Message.reply_to_id, Message.id)
        query = (
            select(Message.role, Message.text, Message.mood_scores)
            .where(
                Message.conversation_id == conversation_id,
                Message.id > context_from,
                turn < before,
            )
            .order_by(turn.desc(), Message.id.desc())
            .limit(limit)
        )
        async with self._session() as session:
            rows = (await session.execute(query)).all()
        turns = [ChatMessage(_role(role), text, Mood.from_scores(scores).label if scores else None)
                 for role, text, scores in reversed(rows)]  # fmt: skip
        while turns and turns[0].role != "user":  # a chat starts with a user turn
            turns.pop(0)
        return turns

    async def reset(self, key: ConversationKey, user_id: str | None = None) -> None:
        """Start a fresh context: earlier turns stay stored but are no longer sent to the model.
        With `user_id`, every conversation in the key's chat that the user wrote in (all its threads)."""
        async with self._session() as session, session.begin():
            if user_id is None:
                conversations = [await conversation_row(session, key)]
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
            if emptied:
                conversation.ref = None  # it may name the person (a phone number id)
            return len(ids), conversation.id if emptied else None

    async def ref(self, key: ConversationKey) -> str:
        """The platform's reference for sending to the conversation later ("" when it gave none):
        for a proactive send (an agent's message, recovery), as botbuilder's ConversationReference."""
        query = select(Conversation.ref).filter_by(platform=key.platform, chat_id=key.chat_id, thread_id=key.thread_id)
        async with self._session() as session:
            return str(await session.scalar(query) or "")

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

    async def customer_texts(self, conversation_id: int, user_id: str, before_id: int, limit: int) -> list[str]:
        """What a user wrote in one conversation before message `before_id`, the latest `limit`, oldest first."""
        query = (
            select(Message.text)
            .where(Message.conversation_id == conversation_id, Message.author_id == user_id)
            .where(Message.role == "user", Message.id < before_id)
            .order_by(Message.id.desc())
            .limit(limit)
        )
        async with self._session() as session:
            return list(reversed((await session.scalars(query)).all()))

    async def last_mood(self, conversation_id: int) -> Mood | None:
        """The mood of the conversation's latest customer message (any customer's)."""
        found = await self._moods(1, Message.conversation_id == conversation_id)
        return found[-1] if found else None

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

    async def unanswered(self, limit: int = 50, since: datetime | None = None) -> list[tuple[str, int]]:
        """The questions the knowledge base had no answer for (the gaps), most asked first: (text, times);
        with `since`, asked since then."""
        question = aliased(Message)
        query = (
            select(func.lower(func.trim(question.text)), func.count())
            .join(Message, Message.reply_to_id == question.id)
            .where(Message.knowledge == "none", *([question.created_at >= since] if since else []))
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

    async def last_user_turn_at(self, conversation_id: int) -> datetime | None:
        query = select(func.max(Message.created_at)).filter_by(conversation_id=conversation_id, role="user")
        async with self._session() as session:
            found = await session.scalar(query)
        return as_utc(found) if found else None


def _role(value: str) -> Role:
    return "assistant" if value in ("assistant", "agent") else "user"  # an agent's words are the support side's
