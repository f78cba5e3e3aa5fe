"""The outbox's one dispatcher: answers their live sender did not finish (it died), escalation
notices (a webhook, a Slack channel, a Telegram group), customer turns relayed into each escalation's
thread there, lines for the agents (assigned, reminded), agents' turns relayed to the customer. Every
send is a row before it is attempted; a failure is recorded and retried with backoff (`run_retries`),
so a dead destination never blocks a reply and nothing is lost; what an attempt posted is noted at
once, and the next attempt edits it. Desks (bot/desk.py) post notices with buttons, one thread each.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.config import Settings
from bot.delivery import OutputChannel, Sent, markup, with_sources
from bot.desk import Desk, conversation, status_line, summary
from bot.destinations import WEBHOOK, Destination, configured
from bot.webhook import WebhookDesk
from core import metrics
from core.escalations import EscalationRecord, EscalationStore
from core.events import ConversationKey, utcnow
from core.memory import Memory, StoredMessage
from core.outbox import CUSTOMER, LEASE_SECONDS, DeliveryRecord, Outbox, pieces
from core.summary import brief

log, MAX_RETRY_SECONDS = logging.getLogger(__name__), 3600.0


class Notifications:
    """The core's Notifier: delivers the outbox and keeps the notices up to date."""

    def __init__(self, memory: Memory, escalations: EscalationStore, outbox: Outbox, settings: Settings) -> None:
        self.memory, self.escalations, self.outbox, self.settings = memory, escalations, outbox, settings
        self.destinations = configured(settings.notify, settings.desks())
        self._http = httpx.AsyncClient(timeout=10)
        self._own: Mapping[str, Desk] = {WEBHOOK: WebhookDesk(self._http, settings.secrets.escalation_webhook_secret)}
        self.desks: Mapping[str, Desk] = self._own
        self.channels: Mapping[str, OutputChannel] = {}
        self.lease = LEASE_SECONDS  # how long a claim holds a row; each send is cut off at a quarter of it
        self._busy: set[str] = set()  # destinations with a lane running here: one send at a time each, in order
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, desks: Mapping[str, Desk], channels: Mapping[str, OutputChannel]) -> None:
        """The running adapters: desks by destination kind, output channels by customer platform."""
        self.desks, self.channels = {**self._own, **desks}, channels

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._http.aclose()

    def changed(self, escalation: EscalationRecord | None) -> None:
        task = asyncio.create_task(self._round(escalation))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    async def _round(self, escalation: EscalationRecord | None) -> None:
        if escalation is not None:
            await self.show(escalation)
        await self.deliver_due()

    async def run_retries(self, check_idle: Callable[[], Awaitable[int]] | None = None, every: float = 10.0) -> None:
        """Retry failed deliveries (and report idle hand-offs) until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                if check_idle is not None:
                    await check_idle()
                await self.deliver_due()
            except Exception:
                log.exception("notifications: a round failed; trying again later")

    async def deliver_due(self) -> None:
        """Deliver what is due, one lane per destination: a slow or dead destination holds only its
        own lane (an agent's message to the customer never waits behind a webhook that hangs).
        Claims are small batches, fenced; each send is cut off well before its claim's lease."""
        tried: set[int] = set()  # each row once per call: a failed one waits for its retry time, or the next round
        while True:
            batch = await self.outbox.claim_due([*self.destinations, CUSTOMER], exclude=set(self._busy),
                                                lease_seconds=self.lease, skip=tried,
                                                platforms=list(self.channels))  # fmt: skip
            if not batch:
                return
            tried |= {delivery.id for delivery in batch}
            lanes: dict[str, list[DeliveryRecord]] = {}
            for delivery in batch:
                lanes.setdefault(delivery.destination, []).append(delivery)
            self._busy |= lanes.keys()
            try:
                await asyncio.gather(*(self._lane(rows) for rows in lanes.values()))
            finally:
                self._busy -= lanes.keys()

    async def _lane(self, deliveries: Sequence[DeliveryRecord]) -> None:
        for delivery in deliveries:
            await self._attempt(delivery)

    async def show(self, escalation: EscalationRecord) -> None:
        """Every sent notice of the escalation shows who has it now (best effort: a notice is a view)."""
        text = f"{summary(await self.payload(escalation))}\n\n{status_line(escalation)}"
        await self._at_notices(escalation, "update the notice", lambda d, at, ref: d.show(at, ref, escalation, text))

    async def _at_notices(self, escalation: EscalationRecord, what: str, act: Callable[[Desk, str, str], Any]) -> None:
        """`act(desk, target, ref)` at every sent notice of the escalation (best effort: failures are logged)."""
        for delivery in await self.outbox.deliveries(escalation.id):
            where = Destination.parse(delivery.destination)
            if delivery.kind == "notice" and delivery.ref and (desk := self.desks.get(where.desk)):
                try:
                    await act(desk, where.target, delivery.ref)
                except Exception as exc:
                    log.warning("escalation #%s: could not %s in %s: %s", escalation.id, what, where.desk, exc)

    async def _erase(self, delivery: DeliveryRecord, escalation: EscalationRecord) -> None:
        """/forget: delete what was sent (every piece of it: refs may list several), or tell the desk."""
        ref = delivery.ref or ""
        if delivery.destination == CUSTOMER:
            channel = self._channel(escalation.key.platform)
            for piece in pieces(ref):
                await channel.delete(Sent(escalation.key, piece))
            return
        where, desk = self._desk(delivery.destination)
        if delivery.kind == "forget":
            await desk.forget(where.target, escalation, ref)
        else:
            await desk.delete(where.target, ref)

    def _desk(self, destination: str) -> tuple[Destination, Desk]:
        where = Destination.parse(destination)
        if (desk := self.desks.get(where.desk)) is None:
            raise RuntimeError(f"no {where.desk!r} desk runs here (is its adapter enabled?)")
        return where, desk

    async def payload(self, escalation: EscalationRecord) -> dict[str, Any]:
        turns = await self.memory.messages(escalation.key, limit=self.settings.notify.transcript_messages)
        return {
            "escalation_id": escalation.id,
            "conversation": conversation(escalation.key),
            "reason": escalation.reason,
            "mood_trend": escalation.scores,
            "summary": brief(turns, self.settings.escalation),  # wants / tried / mood, in three lines
            "opened_at": escalation.opened_at.isoformat(),
            "assignee": {"agent": escalation.assignee, "desk": escalation.assignee_desk},  # core/assignment.py
            "transcript": [{"role": m.role, "author": m.author_id, "text": m.text,
                            "mood": m.mood.label if m.mood else None} for m in turns],
        }  # fmt: skip

    async def _attempt(self, delivery: DeliveryRecord) -> None:
        """One attempt, fenced (skipped when another claim holds the row now) and recorded."""
        escalation = await self.escalations.get(delivery.escalation_id) if delivery.escalation_id else None
        if (escalation is None and delivery.kind != "reply") or not await self.outbox.owns(delivery, self.lease / 4):
            return  # another claim has it, or this one ends too soon for a whole send: the next claim sends it
        what = f"escalation #{escalation.id}" if escalation else f"reply #{delivery.id}"
        ref, error = None, None
        try:
            async with asyncio.timeout(self.lease / 4):  # never past the claim's lease (checked just above)
                ref = await self._send(delivery, escalation)
        except Exception as exc:  # any failure is recorded and retried, never raised into a reply
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("%s to %s failed: %s", what, delivery.destination, error)
            if escalation and delivery.destination == CUSTOMER and delivery.attempts == 0:
                await self._tell_agents(escalation, f"⚠️ Could not deliver to the customer: {error}. Retrying.")
        retry_in = min(self.settings.notify.retry_seconds * 2**delivery.attempts, MAX_RETRY_SECONDS)
        status = await self.outbox.delivered(delivery, error, retry_in, ref=ref, give_up=self._give_up)
        if status == "dead":
            metrics.DEAD_DELIVERIES.labels(delivery.kind).inc()
            log.error("%s: gave up delivering a %s to %s after %d attempts: %s",
                      what, delivery.kind, delivery.destination, delivery.attempts + 1, error)  # fmt: skip
        if escalation and delivery.kind == "notice" and ref is not None:  # taken or resolved while it was sent
            now = await self.escalations.get(escalation.id)
            if now is not None and (now.taken_by, now.resolved_at) != (escalation.taken_by, escalation.resolved_at):
                await self.show(now)

    async def _send(self, delivery: DeliveryRecord, escalation: EscalationRecord | None) -> str | None:
        """Send one row; the platform's ids of what was sent."""
        if escalation is None:  # only a reply is nobody's escalation
            return await self._reply(delivery)
        if delivery.kind == "notice":
            return await self._notice(delivery.destination, escalation)
        if delivery.kind == "relay":
            return await self._relay(delivery, escalation)
        if delivery.kind == "say":  # a line for the agents in the thread (assigned, reminded), once
            where, desk = self._desk(delivery.destination)
            return await desk.mention(where.target, delivery.thread or "", delivery.mention or "", delivery.text or "")
        await self._erase(delivery, escalation)
        return delivery.ref

    async def _reply(self, delivery: DeliveryRecord) -> str | None:
        """An answer whose live sender died before it was wholly shown: shown now, editing what it posted."""
        turn = await self.memory.message(delivery.message_id or 0)
        if turn is None or turn.key is None:
            return None  # forgotten meanwhile: nothing to send
        ref = await self._show(delivery, turn.key, with_sources(turn), markdown=markup(turn.sources))
        log.info("an answer its sender did not finish was sent", extra={"platform": turn.key.platform})
        return ref

    async def _show(
        self, delivery: DeliveryRecord, key: ConversationKey, text: str, markdown: bool = False
    ) -> str | None:
        """A text to the customer, editing what an earlier attempt posted (noted in the row's ref)."""
        note = functools.partial(self.outbox.noted, delivery)
        ids = await self._channel(key.platform).show(
            key, text, pieces(delivery.ref), note, reply_to=delivery.reply_to, markdown=markdown
        )
        return ",".join(ids) or None  # every piece, so that /forget deletes them all

    def _channel(self, platform: str) -> OutputChannel:
        if (channel := self.channels.get(platform)) is None:
            raise RuntimeError(f"the {platform} adapter is not running here")
        return channel

    def _give_up(self, attempts: int, created_at: datetime) -> bool:
        limits = self.settings.notify
        return attempts >= limits.max_attempts or utcnow() - created_at > timedelta(hours=limits.max_age_hours)

    async def _notice(self, destination: str, escalation: EscalationRecord) -> str | None:
        where, desk = self._desk(destination)
        return await desk.notice(where.target, escalation, await self.payload(escalation))

    async def _relay(self, delivery: DeliveryRecord, escalation: EscalationRecord) -> str | None:
        """One stored turn to the customer, or to one agents' destination."""
        turn = await self.memory.message(delivery.message_id or 0)
        if turn is None:
            return None  # forgotten meanwhile: nothing to send
        if delivery.destination == CUSTOMER:
            ref = await self._to_customer(escalation.key, turn, delivery)
        else:
            where, desk = self._desk(delivery.destination)
            ref = await desk.relay(where.target, delivery.thread, escalation, turn)
        metrics.RELAYS.labels("to_customer" if delivery.destination == CUSTOMER else "to_agents").inc()
        text = {"text": turn.text} if self.settings.log_message_text else {}
        fields = {"escalation_id": escalation.id, "destination": Destination.parse(delivery.destination).desk,
                  "role": turn.role, **text}  # fmt: skip
        log.info("relayed", extra=fields)
        return ref

    async def _to_customer(self, key: ConversationKey, turn: StoredMessage, delivery: DeliveryRecord) -> str | None:
        text = turn.text
        if turn.role == "agent":
            text = self.settings.handoff.agent_prefix.format(agent=turn.author_name or "Support") + text
        return await self._show(delivery, key, text)

    async def _tell_agents(self, escalation: EscalationRecord, text: str) -> None:
        """A visible error in the agents' threads (a customer who blocked the bot, a deleted topic...)."""
        await self._at_notices(escalation, "tell the agents", lambda desk, at, ref: desk.say(at, ref, text))
