"""The event ledger: one row per event ever accepted, with who is answering it (owner and lease). It
makes every answer exactly-once: a redelivered event gets the answer it got, an abandoned one is
taken over, and recovery claims what a crash left unanswered (`claim_owed`). Sending the answer is
the outbox's (core/outbox.py): a `reply` row opened with the answer, in the same transaction, notes
what was posted of it and is finished by the dispatcher if its answerer dies. The turns themselves
are core/memory.py's."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, ForeignKey, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core import leases
from core.db import Base, Database
from core.events import ConversationKey, IncomingMessage, Mood, Role, Source, as_utc, utcnow
from core.memory import NAME, Conversation, Message, conversation_row, mood_of
from core.outbox import CUSTOMER, Delivery, pieces

OWNER = leases.PROCESS
"""Who answers an event, in the ledger: this process (this start of it: a restarted container has
the same host name and often the same pid)."""
RECOVERY = leases.RECOVERY
"""The owner of events this process's recovery claimed: taken over by the answer it then starts."""
LEASE = timedelta(minutes=2)
"""How long an event's owner is trusted to be answering it: a redelivery after that takes it over.
(Within one process the conversation's turn lock already orders a redelivery after the answer.)"""


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
    platform_message_id: Mapped[str | None] = mapped_column(String(128))  # the user's message (to reply to it)
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


class Ledger:
    """The ledger's store. Every method is one short transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._session = db.session

    async def accept(self, msg: IncomingMessage) -> Accepted | Seen:
        """Record the event in the ledger and store the user turn; or take over an event accepted
        before and never answered; or report the answer it got. Callers hold the conversation's
        turn lock, so an unanswered event found here has no live answerer."""
        lease = {"status": "answering", "owner": OWNER, "lease_until": utcnow() + LEASE}
        async with self._session() as session, session.begin():
            conversation = await conversation_row(session, msg.key, msg.ref)
            try:
                ledger = await self._insert(session, conversation, msg, attempts=1, **lease)
            except IntegrityError:
                return await self._redelivered(session, conversation, msg.event_id, lease)
            return Accepted(conversation.id, ledger.message_id or 0, conversation.context_from, ledger.id, msg.text)

    async def store(self, msg: IncomingMessage) -> bool:
        """Record the event and its user turn for answering later (the platform is told it arrived
        only after this): False when it was stored before. `accept` then takes it over."""
        async with self._session() as session, session.begin():
            conversation = await conversation_row(session, msg.key, msg.ref)
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
            return Seen(reply.text if reply else "", mood_of(user) if user else None)
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
        return leases.idle(ProcessedEvent.owner, ProcessedEvent.lease_until, self.db.dialect, now, (OWNER, RECOVERY))

    async def record_reply(
        self, accepted: Accepted, text: str, failed: bool, sources: Sequence[Source] = (), knowledge: str | None = None
    ) -> int | None:
        """Store the bot turn (none when the bot stays silent; its id is returned) with the knowledge
        it used (`knowledge`: curated | passages | none, and its sources) and close the event in the
        ledger; a text is owed to the customer from now on (the event's `reply` row in the outbox, pending again if an
        apology was sent before: it is edited into the answer). The caller keeps its lease while it
        delivers the answer (`delivered` ends it); if it dies, the outbox's dispatcher finishes."""
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
                reply = await self._reply(session, ledger.id)
                reply.status, reply.attempts, reply.claim, reply.last_error = "pending", 0, None, None
                reply.next_attempt_at, reply.delivered_at = utcnow(), None
                return turn.id
        return None

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
                (await self._reply(session, ledger.id)).noted(platform_id)

    async def sent_ids(self, key: ConversationKey, event_id: str) -> list[str]:
        """What was posted for an event before (by an attempt that died): edited, not posted again."""
        async with self._session() as session:
            ledger = await self._ledger(session, key, event_id)
            query = select(Delivery.ref).filter_by(ledger_id=ledger.id) if ledger else None
            ref = await session.scalar(query) if query is not None else None
            return pieces(ref)

    async def delivered(self, key: ConversationKey, event_id: str) -> None:
        """The event's answer is wholly on the platform: nothing is owed for it any more."""
        async with self._session() as session, session.begin():
            if (ledger := await self._ledger(session, key, event_id)) is not None:
                ledger.owner, ledger.lease_until = None, None
                reply = await session.scalar(select(Delivery).filter_by(ledger_id=ledger.id))
                if reply is not None:
                    reply.status, reply.delivered_at, reply.claim = "sent", utcnow(), None

    async def _reply(self, session: AsyncSession, ledger_id: int) -> Delivery:
        """The event's `reply` row in the outbox (opened at its first post or with its answer)."""
        reply = await session.scalar(select(Delivery).filter_by(ledger_id=ledger_id))
        if reply is None:
            reply = Delivery(kind="reply", destination=CUSTOMER, ledger_id=ledger_id)
            session.add(reply)
            await session.flush()
        return reply

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
        self, window: timedelta, max_attempts: int, limit: int = 100
    ) -> tuple[list[IncomingMessage], list[str]]:
        """Claim, for this process, the events accepted and never answered that no live process is
        answering, oldest first (an answer stored and not delivered is the outbox's). Events older
        than `window`, or tried `max_attempts` times, are marked failed instead: returned as
        "platform:event_id" for the log. On PostgreSQL, rows another replica is claiming right now
        are skipped (FOR UPDATE SKIP LOCKED)."""
        now = utcnow()
        query = (
            select(ProcessedEvent, Conversation)
            .join(Conversation, Conversation.id == ProcessedEvent.conversation_id)
            .where(ProcessedEvent.status.in_(("accepted", "answering")), self._idle(now))
            .where(ProcessedEvent.message_id.is_not(None))
            .order_by(ProcessedEvent.id)
            .limit(limit)
            .with_for_update(of=ProcessedEvent, skip_locked=True)
        )
        owed, given_up = [], []
        async with self._session() as session, session.begin():
            for ledger, conversation in (await session.execute(query)).tuples():
                if as_utc(ledger.created_at) < now - window or ledger.attempts >= max_attempts:
                    ledger.status, ledger.owner, ledger.lease_until = "failed", None, None
                    given_up.append(f"{conversation.platform}:{ledger.event_id}")
                    continue
                user = await session.get_one(Message, ledger.message_id)
                ledger.owner, ledger.lease_until = RECOVERY, now + LEASE
                owed.append(
                    IncomingMessage(
                        key=ConversationKey(conversation.platform, conversation.chat_id, conversation.thread_id),
                        user_id=user.author_id,
                        user_name=user.author_name,
                        text=user.text,
                        event_id=ledger.event_id,
                        message_id=ledger.platform_message_id or "",
                        received_at=as_utc(user.created_at),
                    )
                )
        return owed, given_up

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
                                               status="answered"))  # fmt: skip
                    await session.flush()
            except IntegrityError:
                return None
            if then is not None:
                await then(session, turn.id)
            return turn.id
