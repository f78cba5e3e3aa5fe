"""The outbox: everything owed to someone outside. The bot's answer to an event (`reply`, opened by
the ledger with the answer and finished here if its live answerer dies), notices of an escalation,
customer turns relayed to the agents' threads, and agents' turns (and the bot's hand-off lines)
relayed to the customer. Each is a row before it is sent; an attempt that fails is recorded and the
row is due again later, so nothing is lost and, with claims, nothing is sent twice across replicas
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, plus a lease); `ref` keeps what was posted, so a second
attempt edits it instead of posting again. A relay is unique per (escalation, destination, turn): a
redelivered event, a double click or two replicas queue it once; a reply is unique per event."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, Text, UniqueConstraint, and_, column, exists, select, table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from core import leases
from core.db import Base, Database
from core.events import as_utc, utcnow

LEASE_SECONDS = 120.0  # how long a claim holds a row; each send is cut off well before (bot/notify.py)
CUSTOMER = "customer"
"""The destination of a relay to the customer, on the customer's own platform."""


class Delivery(Base):
    """One send to one destination: an event's `reply`, an escalation's `notice`, a `relay` of a turn."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("escalation_id", "destination", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id", ondelete="CASCADE"), index=True)
    # a reply: the ledger's event it answers (the text is the event's reply turn, read when it is sent)
    ledger_id: Mapped[int | None] = mapped_column(ForeignKey("processed_events.id", ondelete="CASCADE"), unique=True)
    destination: Mapped[str] = mapped_column(String(512))  # customer | desk:target (bot/destinations.py)
    # reply | notice | relay | say | erase (delete `ref` where sent: /forget) | forget (tell a webhook: /forget)
    kind: Mapped[str] = mapped_column(String(16), default="notice")
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    ref: Mapped[str | None] = mapped_column(Text)  # the platform's ids of what was sent, comma-separated
    text: Mapped[str | None] = mapped_column(Text)  # a `say` to the agents' thread (an assignment, a reminder)
    mention: Mapped[str | None] = mapped_column(String(256))  # ... @-mentioning this agent there
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(default=0)
    claim: Mapped[str | None] = mapped_column(String(32))  # the fence token of the latest claim
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def noted(self, platform_id: str) -> None:
        """One more message posted for this row: its id joins `ref`."""
        self.ref = ",".join([*pieces(self.ref), platform_id])


def pieces(ref: str | None) -> list[str]:
    """The platform ids in a row's `ref` (comma-separated: every piece of a message split in several)."""
    return [piece for piece in (ref or "").split(",") if piece]


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    escalation_id: int | None
    destination: str
    status: str
    attempts: int
    last_error: str | None
    kind: str = "notice"
    message_id: int | None = None
    ref: str | None = None
    thread: str | None = None  # a relay to an agents' destination: the ref of the notice it goes under
    claim: str = ""  # the fence token of this claim: only its holder may send and record the row
    reply_to: str | None = None  # a reply: the platform's id of the user's message (message_id: the answer's turn)
    text: str | None = None  # a say: what to post in the thread, and whom to mention there
    mention: str | None = None


def _record(row: Delivery, thread: str | None = None, **reply: Any) -> DeliveryRecord:
    fields = {"message_id": row.message_id, "text": row.text, "mention": row.mention, **reply}
    return DeliveryRecord(
        row.id, row.escalation_id, row.destination, row.status, row.attempts, row.last_error,
        row.kind, ref=row.ref, thread=thread, claim=row.claim or "", **fields,
    )  # fmt: skip


EVENTS = table(  # the ledger's events (core/ledger.py, which opens the reply rows), and their conversations
    "processed_events", *map(column, ("id", "conversation_id", "status", "reply_id", "owner", "lease_until",
                                      "platform_message_id")),
)  # fmt: skip
CHATS = table("conversations", column("id"), column("platform"))
ANSWERED = ("answered", "failed")


async def queue(session: AsyncSession, escalation_id: int, destinations: Iterable[str], message_id: int) -> int:
    """Queue the relay of one stored turn to each destination, once (in the caller's transaction):
    how many were new."""
    added = 0
    for destination in destinations:
        try:
            async with session.begin_nested():
                session.add(Delivery(escalation_id=escalation_id, destination=destination, kind="relay",
                                     message_id=message_id))  # fmt: skip
                await session.flush()
            added += 1
        except IntegrityError:  # queued before (a redelivery, another replica)
            pass
    return added


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db, self._session = db, db.session

    async def claim_due(
        self,
        destinations: Collection[str],
        exclude: Collection[str] = (),
        limit: int = 16,
        lease_seconds: float = LEASE_SECONDS,
        skip: Collection[int] = (),
        platforms: Collection[str] = (),
    ) -> list[DeliveryRecord]:
        """Up to `limit` pending deliveries that are due, oldest first, to the given destinations
        (none removed from the config) and not to `exclude` (busy here), claimed for this caller with
        a fresh fence token: they are not due again for anyone until `lease_seconds` pass or
        `delivered` reschedules them, and a send checks the token (`owns`) first. A relay to the
        agents is due once its notice is sent (it goes under it); a reply once its event is answered
        and nobody live is delivering it, in a conversation on one of `platforms` (those this caller
        posts to: a benchmark's answers are owed to nobody). On PostgreSQL, rows another replica is
        claiming right now are skipped (SKIP LOCKED)."""
        now, notice = utcnow(), aliased(Delivery)
        under = and_(
            notice.escalation_id == Delivery.escalation_id,
            notice.destination == Delivery.destination,
            notice.kind == "notice",
        )
        sent_notice = exists().where(under, notice.status == "sent")
        mine = (leases.PROCESS, leases.RECOVERY)
        answered = exists().where(
            EVENTS.c.id == Delivery.ledger_id, EVENTS.c.status.in_(ANSWERED), EVENTS.c.reply_id.is_not(None),
            leases.idle(EVENTS.c.owner, EVENTS.c.lease_until, self.db.dialect, now, mine),
            CHATS.c.id == EVENTS.c.conversation_id, CHATS.c.platform.in_(list(platforms)),
        )  # fmt: skip
        wanted = [d for d in destinations if d not in exclude]
        query = (
            select(Delivery)
            .where(Delivery.status == "pending", Delivery.next_attempt_at <= now, Delivery.destination.in_(wanted))
            .where(Delivery.id.not_in(list(skip)))
            .where(Delivery.kind.in_(("notice", "erase", "forget")) | (Delivery.destination == CUSTOMER) | sent_notice)
            .where((Delivery.kind != "reply") | answered)
            .order_by(Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._session() as session, session.begin():
            rows = (await session.scalars(query)).all()
            claimed = []
            for row in rows:
                row.next_attempt_at, row.claim = now + timedelta(seconds=lease_seconds), uuid.uuid4().hex
                thread = None
                if row.kind == "reply":
                    claimed.append(await _reply(session, row))
                    continue
                if row.kind in ("relay", "say") and row.destination != CUSTOMER:
                    refs = select(Delivery.ref).filter_by(
                        escalation_id=row.escalation_id, destination=row.destination, kind="notice"
                    )
                    thread = await session.scalar(refs)
                claimed.append(_record(row, thread))
            return claimed

    async def owns(self, delivery: DeliveryRecord, for_seconds: float) -> bool:
        """Whether this claim holds the row (not re-claimed, sent or forgotten) for at least
        `for_seconds` more: a send that long cannot overlap another claim's."""
        async with self._session() as session:
            row = await session.get(Delivery, delivery.id)
            if row is None or row.status != "pending" or row.claim != delivery.claim:
                return False
            return as_utc(row.next_attempt_at) > utcnow() + timedelta(seconds=for_seconds)

    async def noted(self, delivery: DeliveryRecord, platform_id: str) -> None:
        """Note a message posted for a claimed row, at once: a later attempt edits it, never posts it again."""
        async with self._session() as session, session.begin():
            row = await session.get(Delivery, delivery.id)
            if row is not None and row.claim == delivery.claim:
                row.noted(platform_id)

    async def deliveries(self, escalation_id: int) -> list[DeliveryRecord]:
        async with self._session() as session:
            query = select(Delivery).filter_by(escalation_id=escalation_id).order_by(Delivery.id)
            rows = (await session.scalars(query)).all()
        return [_record(r) for r in rows]

    async def delivered(
        self, delivery: DeliveryRecord, error: str | None, retry_in: float, ref: str | None = None,
        give_up: Callable[[int, datetime], bool] = lambda attempts, created: False,
    ) -> str | None:  # fmt: skip
        """Record one attempt of a claim (ignored when the claim no longer holds the row): sent (with
        the platform's id of what was sent) when `error` is None; otherwise due again in `retry_in`
        seconds, or dead when `give_up(attempts, created_at)`. Returns the row's new status."""
        async with self._session() as session, session.begin():
            row = await session.get(Delivery, delivery.id)
            if row is None or row.claim != delivery.claim or row.status != "pending":
                return None  # forgotten, or another claim has it now
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error, row.ref = "sent", utcnow(), None, ref
            else:
                row.last_error, row.next_attempt_at = error[:2000], utcnow() + timedelta(seconds=retry_in)
                if give_up(row.attempts, as_utc(row.created_at)):
                    row.status = "dead"
            return row.status


async def _reply(session: AsyncSession, row: Delivery) -> DeliveryRecord:
    """A claimed reply with what sending it needs: the answer's turn, and the message it answers."""
    event = (await session.execute(select(EVENTS).where(EVENTS.c.id == row.ledger_id))).one()
    return _record(row, reply_to=event.platform_message_id or None, message_id=event.reply_id)


async def erase(session: AsyncSession, conversation_id: int, message_ids: Sequence[int], user_id: str) -> int:
    """Queue, in the caller's transaction (before the turns go), the erasure of everything sent of a
    forgotten user's words: each copy relayed of these turns, each notice of the conversation's
    escalations (a notice quotes the customer; a thread may be named after them) and, where a notice
    left no ref to delete (a helpdesk that keeps its own copy), a `forget` naming the user for that
    destination's desk. Retried like any delivery; how many were queued."""
    copies = select(Delivery).where(Delivery.message_id.in_(message_ids), Delivery.ref.is_not(None))
    escalation = table("escalations", column("id"), column("conversation_id"))  # declared in core/escalations.py
    escalations = select(escalation.c.id).where(escalation.c.conversation_id == conversation_id)
    notices = select(Delivery).where(Delivery.escalation_id.in_(escalations), Delivery.kind == "notice")
    queued = 0
    for row in [*(await session.scalars(copies)).all(), *(await session.scalars(notices)).all()]:
        if row.kind == "notice" and not row.ref:
            session.add(Delivery(escalation_id=row.escalation_id, destination=row.destination, kind="forget",
                                 ref=user_id[:256]))  # fmt: skip
            queued += 1
        elif row.ref:
            session.add(Delivery(escalation_id=row.escalation_id, destination=row.destination, kind="erase",
                                 ref=row.ref))  # fmt: skip
            row.ref, queued = None, queued + 1  # nobody answers in (or edits) a thread that is going away
    return queued
