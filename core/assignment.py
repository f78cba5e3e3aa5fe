"""Who answers, and when (README "Assignment"). An escalation goes to one on-shift agent of its desks
(`handoff.assign.agents`; on shift: the agent's own `shifts`, else the desk's office hours): round robin
(whoever was assigned least recently) or least open (fewest open cases, then round robin), @-mentioned
in the desk's thread. If nobody takes it within `handoff.sla_minutes`: a reminder to the assignee; as
long again: the next agent (`assign.reassign` times); then, with `assign.hand_back`, the bot hands
itself back to the customer. An agent reassigns by name (`/assign @name`, the console, the API).

Each step is one transaction on the escalation's row (a row lock; SKIP LOCKED keeps replicas apart),
and what it says in the desks' threads is a `say` row queued in the outbox in that transaction: said
once, whoever delivers it. Platform-free: agents are ids at destinations; desks render the mention.
The idle report's claim (core/handoff.py `check_idle`) lives here too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.errors import HandoffClosed
from core.escalations import Escalation, EscalationRecord, record_of
from core.events import as_utc, utcnow
from core.hours import Hours, Schedule, weekly
from core.memory import Conversation
from core.outbox import Delivery
from core.settings import HandoffSettings

WHO = "{who}"
"""Where a desk line names its agent: @-mentioned at the agent's own desk, their name elsewhere."""
ASSIGNED = "👤 Assigned to {who}: take it over and answer here."
REMINDER = "⏰ {who}: this case has waited {minutes} min for a person. Take it over and answer here."
REASSIGNED = "↪️ Reassigned to {who}: {why}."
HANDED_BACK = "🤖 Nobody took this case within {minutes} min: the bot answers the customer again."
EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Assignee:
    desk: str  # the destination where the agent works ("chat:C0SUPPORT", "console")
    agent: str  # the agent's id there (a platform's user id or @username, a console name)


class UnknownAgent(HandoffClosed):
    """An /assign to nobody in `handoff.assign.agents` (refused where it was typed; 422 on the API)."""


class Assignments:
    def __init__(self, db: Database, settings: HandoffSettings, hours: Hours, destinations: Sequence[str]) -> None:
        self.db, self.settings, self.sla = db, settings.assign, settings.sla_minutes
        self.hours, self.destinations = hours, list(destinations)
        self.pool = [Assignee(desk, agent) for desk, agent in settings.assign.agents]
        zone, holidays = hours.default.zone, hours.default.holidays
        self.shifts = {agent: Schedule(weekly(spec), zone, holidays) for agent, spec in settings.assign.shifts}

    def on_shift(self, at: datetime | None = None) -> list[Assignee]:
        """The configured agents on shift at `at` (now; their own shift, else their desk's office hours)."""
        at = at or utcnow()

        def here(a: Assignee) -> bool:
            return (self.shifts[a.agent].opens(at) if a.agent in self.shifts else self.hours.opens(a.desk, at)) is None

        return [a for a in self.pool if here(a)]

    def find(self, name: str) -> Assignee:
        """A configured agent by what someone typed: "@sam", "dana", a chat mention "<@U01DANA|dana>"."""
        wanted = name.strip().strip("<>").split("|")[0].lstrip("@").casefold()
        if found := next((a for a in self.pool if a.agent.lstrip("@").casefold() == wanted), None):
            return found
        known = ", ".join(a.agent for a in self.pool) or "none are configured (handoff.assign.agents)"
        raise UnknownAgent(f"no agent {name.strip()!r} to assign: {known}")

    async def assign(self, escalation_id: int, to: Assignee | None = None, by: str = "") -> EscalationRecord | None:
        """Assign an open escalation that nobody has taken: to `to` (an agent's choice, `by` whom), else
        to the next on-shift agent (none on shift: it waits for the next round). The escalation when it
        changed, else None (resolved, taken, already theirs, nobody on shift)."""
        if not self.pool:
            return None
        async with self.db.session() as session, session.begin():
            row = await session.get(Escalation, escalation_id, with_for_update=True)
            if row is None or row.resolved_at is not None or row.taken_at is not None:
                return None
            current = _assignee(row)
            agent = to or (None if current else await self._pick(session, None))
            if agent is None or agent == current:
                return None
            why = f"assigned by {by}" if by else ""
            self._set(session, row, agent, REASSIGNED.format(who=WHO, why=why) if current and why else ASSIGNED)
            return record_of(row, await session.get_one(Conversation, row.conversation_id))

    async def check(self) -> tuple[list[EscalationRecord], list[EscalationRecord]]:
        """One round over the open escalations nobody has taken: the unassigned get an on-shift agent,
        the SLA reminds and reassigns. (changed ones, ones to hand back to the bot)."""
        if not self.pool:
            return [], []
        now, changed, back = utcnow(), list[EscalationRecord](), list[EscalationRecord]()
        query = (
            select(Escalation, Conversation)
            .join(Conversation, Conversation.id == Escalation.conversation_id)
            .where(Escalation.resolved_at.is_(None), Escalation.taken_at.is_(None), Escalation.sla_stage < 2)
            .order_by(Escalation.id)
            .with_for_update(of=Escalation, skip_locked=True)
        )
        async with self.db.session() as session, session.begin():
            for row, conversation in (await session.execute(query)).tuples().all():
                step = await self._step(session, row, now)
                if step:
                    (back if step == "back" else changed).append(record_of(row, conversation))
        return changed, back

    async def _step(self, session: AsyncSession, row: Escalation, now: datetime) -> str:
        current, sla = _assignee(row), timedelta(minutes=self.sla)
        if current is None:
            if agent := await self._pick(session, None):
                self._set(session, row, agent, ASSIGNED)
                return "assigned"
            return ""
        if self.sla <= 0 or row.assigned_at is None:
            return ""
        waited, minutes = now - as_utc(row.assigned_at), f"{self.sla:g}"
        if row.sla_stage == 0 and waited >= sla:
            row.sla_stage = 1
            self._say(session, row, current, REMINDER.format(who=WHO, minutes=minutes))
            return "reminded"
        if row.sla_stage != 1 or waited < 2 * sla:
            return ""
        if row.reassigned < self.settings.reassign and (agent := await self._pick(session, current)):
            row.reassigned += 1
            why = f"{current.agent} did not take it within {2 * self.sla:g} min"
            self._set(session, row, agent, REASSIGNED.format(who=WHO, why=why))
            return "reassigned"
        row.sla_stage = 2  # nobody else: it stays with them (the idle report still tells the customer)
        if not self.settings.hand_back:
            return ""
        self._say(session, row, None, HANDED_BACK.format(minutes=f"{2 * self.sla:g}"))
        return "back"

    def _set(self, session: AsyncSession, row: Escalation, agent: Assignee, line: str) -> None:
        row.assignee, row.assignee_desk, row.assigned_at, row.sla_stage = agent.agent, agent.desk, utcnow(), 0
        self._say(session, row, agent, line)

    def _say(self, session: AsyncSession, row: Escalation, agent: Assignee | None, line: str) -> None:
        """Queue a line in every desk's thread of the escalation, mentioning `agent` at their own desk."""
        for desk in self.destinations:
            mention = agent.agent if agent and desk == agent.desk else None
            named = f"{agent.agent} ({agent.desk.partition(':')[0]})" if agent else ""
            text = line if mention else line.replace(WHO, named)
            session.add(Delivery(escalation_id=row.id, destination=desk, kind="say", text=text, mention=mention))

    async def _pick(self, session: AsyncSession, exclude: Assignee | None) -> Assignee | None:
        """The next on-shift agent other than `exclude`: least recently assigned (round robin), or with
        the fewest open cases first (least open); ties go in the configured order."""
        candidates = [a for a in self.on_shift() if a != exclude]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        who = (Escalation.assignee_desk, Escalation.assignee)
        assigned = select(*who, func.max(Escalation.assigned_at)).where(Escalation.assignee.is_not(None))
        last = {(d, a): as_utc(t) for d, a, t in (await session.execute(assigned.group_by(*who))).all() if t}
        still_open = select(*who, func.count(Escalation.id)).where(Escalation.resolved_at.is_(None))
        load = {(d, a): n for d, a, n in (await session.execute(still_open.group_by(*who))).all()}

        def order(a: Assignee) -> tuple[int, datetime, int]:
            cases = load.get((a.desk, a.agent), 0) if self.settings.method == "least_open" else 0
            return cases, last.get((a.desk, a.agent), EPOCH), self.pool.index(a)

        return min(candidates, key=order)


def _assignee(row: Escalation) -> Assignee | None:
    return Assignee(row.assignee_desk or "", row.assignee) if row.assignee else None


async def claim_idle(db: Database, before: datetime) -> list[EscalationRecord]:
    """Open escalations no agent has acted on since `before` (taken or not), reported at most once
    per idle period: claimed here for this caller (SKIP LOCKED keeps replicas apart)."""
    active = func.coalesce(Escalation.agent_active_at, Escalation.opened_at)
    query = (
        select(Escalation, Conversation)
        .join(Conversation, Conversation.id == Escalation.conversation_id)
        .where(Escalation.resolved_at.is_(None), active < before)
        .where(or_(Escalation.reminded_at.is_(None), Escalation.reminded_at < before))
        .order_by(Escalation.id)
        .with_for_update(of=Escalation, skip_locked=True)
    )
    async with db.session() as session, session.begin():
        rows = (await session.execute(query)).tuples().all()
        for row, _ in rows:
            row.reminded_at = utcnow()
        return [record_of(row, conversation) for row, conversation in rows]
