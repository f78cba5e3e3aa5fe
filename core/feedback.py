"""Feedback on the bot's answers: a thumb up or down under an answer, one per person and answer,
given in the channel (buttons under the answer, where the platform has them). A click that arrives
twice (a redelivery, a double click) changes nothing; a change of mind replaces the earlier thumb.

A row goes with the answer it is on (ON DELETE CASCADE) and with the person who gave it (`/forget`
deletes theirs: `forget` below). A thumb down on an answer the knowledge base gave puts
its sources on the review list (`FeedbackStore.to_review`; `tonebot report` prints it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, SmallInteger, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.errors import InvalidMessage
from core.events import ConversationKey, utcnow
from core.memory import Conversation, Message

THUMBS = {"up": 1, "down": -1}


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", "author_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(String(128))
    value: Mapped[int] = mapped_column(SmallInteger)  # +1 up, -1 down
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class Given:
    """What a click did: `changed` False when it repeated what was stored (a redelivery, a double click)."""

    message_id: int
    value: int
    changed: bool


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def give(self, key: ConversationKey, message_id: int, author_id: str, thumb: str) -> Given:
        """Store `author_id`'s thumb ("up" / "down") on the bot's answer `message_id` in the conversation
        `key`; InvalidMessage for anything but a bot answer there (a page may send any number)."""
        if thumb not in THUMBS:
            raise InvalidMessage(f"feedback is 'up' or 'down', not {thumb!r}")
        value = THUMBS[thumb]
        async with self.db.session() as session, session.begin():
            here = (Conversation.platform == key.platform, Conversation.chat_id == key.chat_id,
                    Conversation.thread_id == key.thread_id)  # fmt: skip
            answer = await session.scalar(select(Message).join(Conversation).where(Message.id == message_id, *here))
            if answer is None or answer.role != "assistant":
                raise InvalidMessage("feedback is given on the bot's answers in this conversation only (that is none)")
            query = select(Feedback).filter_by(message_id=message_id, author_id=author_id)
            row = await session.scalar(query)
            if row is None:
                try:
                    async with session.begin_nested():
                        session.add(Feedback(message_id=message_id, conversation_id=answer.conversation_id,
                                             author_id=author_id, value=value))  # fmt: skip
                    return Given(message_id, value, changed=True)
                except IntegrityError:  # the same click, delivered twice at once
                    row = (await session.scalars(query)).one()
            if row.value == value:
                return Given(message_id, value, changed=False)
            row.value, row.updated_at = value, utcnow()
            return Given(message_id, value, changed=True)

    async def of(self, conversation_ids: list[int]) -> dict[int, int]:
        """Each answer's net thumbs (up less down) in these conversations."""
        query = select(Feedback.message_id, Feedback.value).where(Feedback.conversation_id.in_(conversation_ids))
        net: Counter[int] = Counter()
        async with self.db.reader() as session:
            for message_id, value in (await session.execute(query)).tuples():
                net[message_id] += value
        return dict(net)

    async def to_review(self, since: datetime | None = None) -> list[tuple[str, str, int]]:
        """Knowledge-base sources of answers given a thumb down, most first: (id, title, thumbs down)."""
        query = select(Message.sources).join(Feedback, Feedback.message_id == Message.id).where(Feedback.value < 0)
        if since is not None:
            query = query.where(Feedback.updated_at >= since)
        found: Counter[tuple[str, str]] = Counter()
        async with self.db.reader() as session:
            for sources in (await session.scalars(query.where(Message.sources.is_not(None)))).all():
                found.update((str(s["id"]), str(s.get("title", ""))) for s in sources or ())
        return [(id_, title, n) for (id_, title), n in found.most_common()]


async def forget(session: AsyncSession, conversation_id: int, author_id: str) -> None:
    """/forget: a person's thumbs in a conversation (those on answers deleted go with them anyway)."""
    await session.execute(delete(Feedback).where(Feedback.conversation_id == conversation_id,
                                                 Feedback.author_id == author_id))  # fmt: skip
