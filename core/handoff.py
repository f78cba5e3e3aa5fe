"""The live hand-off: an agent takes an escalated conversation over, talks with the customer through
tonebot, and hands it back. Platform-free: what is said is stored as turns (the agent's own role,
which the model later sees as the support side), and every relay is a row in the outbox, queued in
the same transaction as the turn it carries, so it is sent exactly once whoever delivers it.

    customer turn  -> relayed to every agents' destination the composition root gives
    agent turn     -> relayed to the customer, on the customer's own platform
    hand-off lines -> the bot tells the customer that a person joined, or that they still wait
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics
from core.assignment import Assignments, claim_idle
from core.errors import HandoffClosed
from core.escalations import EscalationRecord, EscalationStore
from core.events import Agent, AgentMessage, as_utc, utcnow
from core.feedback import RATING_EVENT
from core.hours import Hours
from core.ledger import Ledger
from core.memory import Memory, StoredMessage
from core.notes import NoteRecord, NoteStore, canned, note_text
from core.outbox import CUSTOMER, queue
from core.settings import HandoffSettings

log = logging.getLogger(__name__)
BOT = ("tonebot", "tonebot")
"""The author of the hand-off lines (stored as the bot's turns; the live chat page shows them)."""


@dataclass(frozen=True)
class Case:
    escalation: EscalationRecord
    transcript: list[StoredMessage]
    notes: list[NoteRecord] = field(default_factory=list)  # the team's private notes on it


class Handoff:
    """The escalation service agents use wherever they work (a platform's desk, the operator console,
    the helpdesk API): the cases with their transcripts, take over, talk, hand back."""

    def __init__(
        self,
        memory: Memory,
        escalations: EscalationStore,
        settings: HandoffSettings,
        destinations: Sequence[str] = (),
        changed: Callable[[EscalationRecord | None], None] = lambda _: None,
        resolved: Callable[[EscalationRecord], Awaitable[None]] | None = None,
        rating_line: str = "",
    ) -> None:
        self.memory, self.escalations, self.settings = memory, escalations, settings
        self.hours = Hours(settings.hours)  # when people are at the desks (pages wait for them)
        self.ledger = Ledger(memory.db)  # a turn nobody answers is stored once per event id too
        self.resolved = resolved  # after a hand-back: what the bot learns from it (a proposed Q&A entry)
        self.relayed_to = list(destinations)  # where a customer's turns are relayed (the console reads the database)
        self.changed = changed  # new rows in the outbox, or an escalation changed: deliver and update notices
        self.transcript_messages = 100
        self.notes = NoteStore(memory.db)
        self.rating_line = rating_line  # asked once after a hand-back (outcome.ask_rating)
        self.assignments = Assignments(memory.db, settings, self.hours, self.relayed_to)

    async def cases(self, open_only: bool = True, limit: int = 100) -> list[Case]:
        records = await self.escalations.all(open_only=open_only, limit=limit)
        notes = await self.notes.of([r.id for r in records])
        return [Case(r, await self.memory.messages(r.key, limit=self.transcript_messages), notes[r.id])
                for r in records]  # fmt: skip

    async def get(self, escalation_id: int) -> EscalationRecord | None:
        return await self.escalations.get(escalation_id)

    async def acknowledge(self, escalation_id: int) -> EscalationRecord | None:
        return await self.escalations.acknowledge(escalation_id)

    async def customer_turn(self, escalation_id: int, message_id: int) -> None:
        """A customer's turn in an open escalation goes to the agents (with its mood, read when sent)."""
        if not self.relayed_to:
            return
        async with self.memory.db.session() as session, session.begin():
            added = await queue(session, escalation_id, self.relayed_to, message_id)
        if added:
            self.changed(None)

    async def take(self, escalation_id: int, agent: Agent) -> EscalationRecord:
        """An agent takes the conversation over: the bot goes silent there and the customer is told
        once. Taking it again (a double click, a second agent) changes nothing."""
        record, took = await self.escalations.take(escalation_id, _name(agent))
        if record is None or record.status == "resolved":
            raise HandoffClosed(f"escalation #{escalation_id} is not open")
        if took:
            metrics.HANDOFFS.labels(agent.via).inc()
            log.info("escalation taken over", extra={"escalation_id": escalation_id, "via": agent.via})
            line = self.settings.joined_line.format(agent=agent.name or "A person")
            await self._to_customer(record, BOT, line, f"handoff:{escalation_id}:joined", role="assistant")
            self.changed(record)
        return record

    def note_text(self, text: str) -> str | None:
        """The private note in an agent's message (it starts with a `note_prefixes`), else None."""
        return note_text(text, self.settings.note_prefixes)

    async def note(self, message: AgentMessage) -> bool:
        """Keep a private note on the case (never relayed): False when this event id was kept before."""
        record = await self.escalations.get(message.escalation_id)
        text = (self.note_text(message.text) or message.text).strip()
        if record is None:
            raise HandoffClosed(f"no escalation #{message.escalation_id}")
        if not text:
            raise HandoffClosed("the note has no text")
        kept = await self.notes.add(record.id, record.conversation_id, (message.agent.id, message.agent.name), text,
                                    message.event_id)  # fmt: skip
        if kept:
            log.info("note kept on an escalation", extra={"escalation_id": record.id, "via": message.agent.via})
            self.changed(record)
        return kept

    async def say(self, message: AgentMessage) -> bool:
        """Relay an agent's message to the customer (taking the conversation over if nobody has):
        False when this message was relayed before (a redelivery, a double submit). A message that
        starts with a note prefix is a private note instead: kept, never relayed."""
        if self.note_text(message.text) is not None:
            return await self.note(message)
        command, _, name = message.text.strip().partition(" ")
        if command.casefold() == "/assign":
            await self.assign(message.escalation_id, name, message.agent)
            return True
        message = replace(message, text=self.canned(message.text))
        record = await self.escalations.get(message.escalation_id)
        if record is None or record.status == "resolved":
            raise HandoffClosed(f"escalation #{message.escalation_id} is not open: resolved or unknown")
        if not message.text.strip():
            raise HandoffClosed("the message has no text")
        if record.status == "open":
            record = await self.take(record.id, message.agent)
        author = (message.agent.id, message.agent.name)
        new = await self._to_customer(record, author, message.text, f"agent:{message.event_id}", role="agent")
        if new and await self.escalations.agent_wrote(record.id):  # its relay logs a line when it is sent
            metrics.FIRST_HUMAN_REPLY_SECONDS.observe((utcnow() - as_utc(record.opened_at)).total_seconds())
        return new

    def canned(self, text: str) -> str:
        """An agent's "/canned NAME" as that canned reply (`handoff.canned`); other text as it is."""
        return canned(text, self.settings.canned)

    async def assign(self, escalation_id: int, name: str, by: Agent | None = None) -> EscalationRecord:
        """Assign the case to a configured agent by name (`/assign @name`, the console, the API), said in
        the desks' threads; a name not in `handoff.assign.agents` raises UnknownAgent."""
        record = await self.escalations.get(escalation_id)
        if record is None or record.status == "resolved":
            raise HandoffClosed(f"escalation #{escalation_id} is not open: resolved or unknown")
        if record.taken_by is not None:
            raise HandoffClosed(f"escalation #{escalation_id} is taken over by {record.taken_by}: nobody to assign")
        to = self.assignments.find(name)
        changed = await self.assignments.assign(escalation_id, to, by=(by.name or by.id) if by else "")
        if changed is not None:
            log.info("escalation assigned", extra={"escalation_id": escalation_id, "assignee": changed.assignee})
            self.changed(changed)
        return changed or record

    async def check_assignments(self) -> int:
        """A round of assignment and the SLA (core/assignment.py): the unassigned get an on-shift agent,
        the late a reminder, then the next agent; with `assign.hand_back`, the bot takes the case back."""
        changed, back = await self.assignments.check()
        for record in changed:
            self.changed(record)
        for record in back:
            resolved = await self.escalations.resolve(record.id, "sla")
            log.info("escalation handed back to the bot: nobody took it", extra={"escalation_id": record.id})
            self.changed(resolved)
            line = self.settings.assign.hand_back_line
            await self._to_customer(record, BOT, line, f"handoff:{record.id}:sla", role="assistant")
        return len(changed) + len(back)

    async def tick(self) -> int:  # the periodic round: assignment and the SLA, then the idle report
        return await self.check_assignments() + await self.check_idle()

    async def resolve(self, escalation_id: int, by: str) -> EscalationRecord | None:
        """Hand the conversation back to the bot (its context keeps what the agent said)."""
        record = await self.escalations.resolve(escalation_id, by[:128])  # a long agent name is cut, not an error
        if record is not None and record.taken_at is not None and record.resolved_at is not None:
            metrics.HANDOFF_SECONDS.observe((as_utc(record.resolved_at) - as_utc(record.taken_at)).total_seconds())
        self.changed(record)
        if record is not None and record.resolved_at is not None and self.rating_line:
            await self._ask_rating(record)
        if record is not None and self.resolved is not None:
            try:
                await self.resolved(record)
            except Exception:  # learning is a bonus: the hand-back itself is done
                log.exception("escalation #%s: learning from the hand-off failed", record.id)
        return record

    async def _ask_rating(self, record: EscalationRecord) -> None:
        """The rating question, once per escalation (its event id), and never to a customer whose
        latest message is negative (asking an upset person to rate is asking for a 1)."""
        mood = await self.memory.last_mood(record.conversation_id)
        if mood is not None and mood.label == "negative":
            log.info("no rating asked: the customer is upset", extra={"escalation_id": record.id})
            return
        await self._to_customer(record, BOT, self.rating_line, f"{RATING_EVENT}{record.id}", role="assistant")

    async def check_idle(self) -> int:
        """Escalations no agent acted on for `idle_minutes` while the customer waits: the customer is
        told they still wait for a person, and the destinations are reminded (once per idle period)."""
        if self.settings.idle_minutes <= 0 or self.hours.away(self.relayed_to, utcnow()) is not None:
            return 0  # out of every desk's hours nobody is late: the customer was told when people are back
        since = utcnow() - timedelta(minutes=self.settings.idle_minutes)
        reported = 0
        for record in await claim_idle(self.memory.db, since):
            last = await self.memory.last_user_turn_at(record.conversation_id)
            if last is None or last <= as_utc(record.agent_active_at or record.opened_at):
                continue  # nobody is waiting: the customer has not written since an agent last acted
            event = f"handoff:{record.id}:waiting:{utcnow().isoformat(timespec='minutes')}"
            await self._to_customer(record, BOT, self.settings.waiting_line, event, role="assistant",
                                    remind=self.settings.renotify)  # fmt: skip
            log.info("escalation idle: the customer was told and the team reminded", extra={"escalation_id": record.id})
            reported += 1
        return reported

    async def _to_customer(
        self, record: EscalationRecord, author: tuple[str, str], text: str, event_id: str, role: str,
        remind: bool = False,
    ) -> bool:  # fmt: skip
        """Store a turn in the customer's conversation and queue its relay to the customer (and, for a
        reminder, to the agents' threads) in one transaction; False when it was stored before."""
        destinations = [CUSTOMER, *(self.relayed_to if remind else ())]

        async def relay(session: AsyncSession, message_id: int) -> None:
            await queue(session, record.id, destinations, message_id)

        stored = await self.ledger.add_turn(record.conversation_id, role, author, text, event_id, then=relay)
        if stored is not None:
            self.changed(None)
        return stored is not None


def _name(agent: Agent) -> str:
    """How an agent is recorded (taken_by, resolved_by): cut to the columns' size, a long name is no error."""
    return f"{agent.via}:{agent.name or agent.id}"[:128]
