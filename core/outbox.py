"""The outbox: every notice tonebot owes a destination is a row before it is sent; an attempt that
fails is recorded and the row is due again later, so nothing is lost and, with claims, nothing is
sent twice across replicas (`FOR UPDATE SKIP LOCKED` on PostgreSQL, plus a lease)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.events import utcnow


class Delivery(Base):
    """One notification of an escalation to one destination."""

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
class DeliveryRecord:
    id: int
    escalation_id: int
    destination: str
    status: str
    attempts: int
    last_error: str | None


def _record(row: Delivery) -> DeliveryRecord:
    return DeliveryRecord(row.id, row.escalation_id, row.destination, row.status, row.attempts, row.last_error)


class Outbox:
    def __init__(self, db: Database) -> None:
        self._session = db.session

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
            return [_record(r) for r in rows]

    async def deliveries(self, escalation_id: int) -> list[DeliveryRecord]:
        async with self._session() as session:
            rows = (await session.scalars(select(Delivery).filter_by(escalation_id=escalation_id))).all()
        return [_record(r) for r in rows]

    async def delivered(self, delivery_id: int, error: str | None, retry_in: float) -> None:
        """Record one attempt: sent when `error` is None, otherwise due again in `retry_in` seconds."""
        async with self._session() as session, session.begin():
            row = await session.get_one(Delivery, delivery_id)
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "sent", utcnow(), None
            else:
                row.last_error, row.next_attempt_at = error[:2000], utcnow() + timedelta(seconds=retry_in)
