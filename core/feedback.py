"""Feedback on the bot's answers: a thumb up or down under an answer, one per person and answer,
given in the channel (buttons under the answer, where the platform has them). A click that arrives
twice (a redelivery, a double click) changes nothing; a change of mind replaces the earlier thumb.

After a hand-off, when `outcome.ask_rating` is on, the customer is asked once for a rating (1-5);
their reply is stored here too (`kind` "rating", on the question's message).

A row goes with the answer it is on (ON DELETE CASCADE) and with the person who gave it (`/forget`
deletes theirs: `forget` below). A thumb down on an answer the knowledge base gave puts
its sources on the review list (`FeedbackStore.to_review`; `tonebot report` prints it).
"""

from __future__ import annotations

import re
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
from core.ledger import ProcessedEvent
from core.memory import Conversation, Message

THUMBS = {"up": 1, "down": -1}
RATING_EVENT = "handoff:rating:"  # the ledger's event id of the rating question, and the escalation's id
RATING = re.compile(r"\s*([1-5])\s*(?:/\s*5|stars?|⭐+)?\s*[.!]*\s*", re.IGNORECASE)


def parse_rating(text: str) -> int | None:
    """A reply that is a rating: "4", "4/5", "5 stars", "3!", or only stars ("⭐⭐⭐⭐"); else None."""
    if found := RATING.fullmatch(text):
        return int(found[1])
    stars = text.strip()
    return len(stars) if stars and set(stars) == {"⭐"} and len(stars) <= 5 else None


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", "author_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8), default="thumb")  # thumb (on an answer) | rating (the question)
    value: Mapped[int] = mapped_column(SmallInteger)  # thumb: +1 up, -1 down; rating: 1-5
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
            query = select(Feedback).filter_by(message_id=message_id, author_id=author_id, kind="thumb")
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

    async def rating_prompt(self, conversation_id: int, since: datetime) -> int | None:
        """The rating question asked in the conversation since `since` and not answered yet (its message id)."""
        rated = select(Feedback.message_id).where(Feedback.kind == "rating")
        query = (select(ProcessedEvent.message_id).where(
            ProcessedEvent.conversation_id == conversation_id, ProcessedEvent.event_id.like(f"{RATING_EVENT}%"),
            ProcessedEvent.created_at >= since, ProcessedEvent.message_id.not_in(rated),
        ).order_by(ProcessedEvent.id.desc()).limit(1))  # fmt: skip
        async with self.db.reader() as session:
            return await session.scalar(query)

    async def rate(self, message_id: int, conversation_id: int, author_id: str, value: int) -> bool:
        """Store the answer to the rating question `message_id`: False when it was answered before."""
        try:
            async with self.db.session() as session, session.begin():
                session.add(Feedback(message_id=message_id, conversation_id=conversation_id, author_id=author_id,
                                     kind="rating", value=value))  # fmt: skip
        except IntegrityError:
            return False
        return True

    async def to_review(self, since: datetime | None = None) -> list[tuple[str, str, int]]:
        """Knowledge-base sources of answers given a thumb down, most first: (id, title, thumbs down)."""
        query = select(Message.sources).join(Feedback, Feedback.message_id == Message.id)
        query = query.where(Feedback.kind == "thumb", Feedback.value < 0)
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
