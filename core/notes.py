"""Private notes on an escalation: what agents tell each other about a case ("// refund approved by
finance", "note: VIP customer"), kept apart from the conversation's turns, so no note is ever relayed
to the customer or shown to the model. Every agent sees them (the console, the operator API); a note
is stored once per event id (a redelivered desk message), and goes with the conversation's data on
/forget and with its escalation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.errors import HandoffClosed
from core.events import as_utc, utcnow


class Note(Base):
    __tablename__ = "escalation_notes"
    __table_args__ = (UniqueConstraint("escalation_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(ForeignKey("escalations.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(String(128))
    author_name: Mapped[str] = mapped_column(String(256), default="")
    text: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class NoteRecord:
    author: str
    text: str
    at: datetime


def note_text(text: str, prefixes: Sequence[str]) -> str | None:
    """The note in an agent's message that starts with one of `prefixes` (case-insensitive), else None."""
    stripped = text.lstrip()
    for prefix in prefixes:
        if prefix and stripped[: len(prefix)].casefold() == prefix.casefold():
            return stripped[len(prefix) :].strip()
    return None


class NoteStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, escalation_id: int, conversation_id: int, author: tuple[str, str], text: str,
                  event_id: str) -> bool:  # fmt: skip
        """Keep a note; False when this event id was kept before."""
        try:
            async with self.db.session() as session, session.begin():
                session.add(Note(escalation_id=escalation_id, conversation_id=conversation_id, author_id=author[0],
                                 author_name=author[1][:256], text=text, event_id=event_id[:255]))  # fmt: skip
        except IntegrityError:
            return False
        return True

    async def of(self, escalation_ids: Sequence[int]) -> dict[int, list[NoteRecord]]:
        """The notes of these escalations, oldest first."""
        query = select(Note).where(Note.escalation_id.in_(escalation_ids)).order_by(Note.id)
        found: dict[int, list[NoteRecord]] = {id_: [] for id_ in escalation_ids}
        async with self.db.reader() as session:
            for note in (await session.scalars(query)).all():
                found[note.escalation_id].append(NoteRecord(note.author_name or note.author_id, note.text,
                                                            as_utc(note.created_at)))  # fmt: skip
        return found


async def forget(session: AsyncSession, conversation_id: int) -> None:
    """/forget: the notes kept on the conversation's escalations (they are about the person)."""
    await session.execute(delete(Note).where(Note.conversation_id == conversation_id))


def canned(text: str, replies: Sequence[tuple[str, str]]) -> str:
    """An agent's "/canned NAME" as that canned reply (`handoff.canned`); other text as it is."""
    command, _, name = text.strip().partition(" ")
    if command.casefold() != "/canned":
        return text
    if (reply := dict(replies).get(name.strip())) is None:
        known = ", ".join(n for n, _ in replies) or "none are configured (handoff.canned)"
        raise HandoffClosed(f"no canned reply {name.strip()!r}: {known}")
    return reply
