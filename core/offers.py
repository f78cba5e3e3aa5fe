"""Offering a person before escalating: the offers the bot made ("Would you like me to connect you with
a person from our team?"), what the customer answered, and the two readings the policy needs from
the customer's words — a yes or a no to the offer, and a question asked for the third time.

An offer is a row per customer message that drew it (so a retried turn offers once), deleted with
that message (/forget). The customer's next message answers it: yes escalates, anything else is
remembered as declined, and no second offer follows for `escalation.offer_hours`. The policy
is core/escalation.py; the readings of the customer's words, core/phrases.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.events import utcnow


class Offer(Base):
    __tablename__ = "escalation_offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    # the customer message that drew the offer: one offer per message, gone with it
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answer: Mapped[str | None] = mapped_column(String(8), default=None)  # yes | no (anything else: no)


@dataclass(frozen=True)
class OfferState:
    """The offers the policy weighs for a customer message."""

    pending: str = ""  # the reason of the offer the bot's last answer made, not yet answered
    pending_id: int | None = None
    made: bool = False  # an offer was made within offer_hours (answered or not): no second one


class OfferStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def state(self, conversation_id: int, message_id: int, since: datetime) -> OfferState:
        """The offers before `message_id` (a retried turn does not answer its own offer)."""
        query = (
            select(Offer)
            .where(Offer.conversation_id == conversation_id, Offer.message_id < message_id, Offer.created_at >= since)
            .order_by(Offer.id.desc())
            .limit(1)
        )
        async with self.db.reader() as session:
            last = (await session.scalars(query)).first()
        if last is None:
            return OfferState()
        unanswered = last.answer is None
        return OfferState(last.reason if unanswered else "", last.id if unanswered else None, made=True)

    async def offer(self, conversation_id: int, message_id: int, reason: str) -> None:
        """Record the offer a customer message drew (once: a retried turn finds it there)."""
        try:
            async with self.db.session() as session, session.begin():
                session.add(Offer(conversation_id=conversation_id, message_id=message_id, reason=reason))
        except IntegrityError:
            pass

    async def answered(self, offer_id: int, answer: str) -> None:
        """The customer's answer, once: the first answer stands."""
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(Offer).where(Offer.id == offer_id, Offer.answer.is_(None)).values(answer=answer)
            )
