"""The one core entry point: dedupe -> store -> classify -> pick prompt -> reply -> store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core import metrics, reports, waits
from core.engine import Engine, Health
from core.errors import Busy, InvalidMessage, Unavailable, check_text
from core.escalation import EscalationState, PublicLimit, Route, decide, route
from core.escalations import EscalationRecord, EscalationStore
from core.events import ConversationKey, IncomingMessage, Mood, Reply, utcnow
from core.feedback import FeedbackStore, Given, parse_rating
from core.feedback import forget as forget_feedback
from core.handoff import Handoff
from core.insights import Insights
from core.knowledge import Answer, Knowledge, is_question
from core.learning import learning
from core.ledger import Accepted, Ledger, Seen
from core.memory import Memory
from core.notes import forget as forget_notes
from core.offers import OfferStore
from core.outbox import erase
from core.phrases import asks_for_human
from core.prompts import build_chat
from core.settings import EscalationSettings, HandoffSettings, MemorySettings, OutcomeSettings, PromptSettings

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side while answering. Please try again in a moment."
TOO_LONG = (
    "Your message is longer than {limit:,} characters, more than I read at once. Please send it in shorter parts."
)

INTERNAL_EVENTS = ("handoff:", "agent:")
"""Event ids of turns the hand-off stores (core/handoff.py), never a customer's."""

Event = Mood | str | Reply
"""What `Bot.stream` yields: the mood first, then text chunks, and the final Reply last."""


class Notifier(Protocol):
    """Delivers what the outbox holds (notices, relays) to the support team and the customers; must
    not raise (failures are retried later)."""

    @property
    def destinations(self) -> Sequence[str]: ...

    def changed(self, escalation: EscalationRecord | None) -> None:
        """New rows are in the outbox, or an escalation changed (its notices show who has it): act soon."""


class Bot:
    """The single entry point for adapters: messages (`stream` / `handle`), batch moods (`classify`),
    readiness (`health`), the user's own data (`reset`, `forget`, `recent_moods`), and the
    escalation service (`support`). Platform-free."""

    def __init__(
        self,
        engine: Engine,
        memory: Memory,
        prompts: PromptSettings,
        limits: MemorySettings,
        escalation: EscalationSettings | None = None,
        notifier: Notifier | None = None,
        log_text: bool = False,
        escalations: EscalationStore | None = None,
        handoff: Handoff | None = None,
        knowledge: Knowledge | None = None,
        outcome: OutcomeSettings | None = None,
    ) -> None:
        self.engine, self.memory, self.prompts, self.limits = engine, memory, prompts, limits
        self.policy, self.knowledge = escalation, knowledge
        self.outcome, self.feedback = outcome or OutcomeSettings(), FeedbackStore(memory.db)
        self.insights = Insights(memory, self.outcome, self._asks_for_human)  # outcomes, satisfaction, feedback
        self._public = PublicLimit(
            escalation.public_per_user_hour if escalation else 0, escalation.public_per_origin_hour if escalation else 0
        )
        self.escalations = escalations or EscalationStore(memory.db)
        self.offers = OfferStore(memory.db)  # a person offered before escalating, and the answers
        self.ledger = Ledger(memory.db)  # every event once: accepted, answered, delivered
        # the hand-off service is built by the composition root (bot/app.py) and given to whoever needs it;
        # without one (a bare Bot), one with the default settings relays to the notifier's destinations
        self.handoff = handoff or Handoff(
            memory, self.escalations, HandoffSettings(), destinations=notifier.destinations if notifier else (),
            changed=notifier.changed if notifier else lambda _: None,
            resolved=learning(memory, knowledge) if knowledge else None,
            rating_line=self.outcome.rating_line if self.outcome.ask_rating else "",
        )  # fmt: skip
        self.hours = self.handoff.hours  # out of a desk's hours its pages wait
        self.notifier = notifier
        self._locks: weakref.WeakValueDictionary[ConversationKey, asyncio.Lock] = weakref.WeakValueDictionary()
        self.log_text = log_text  # message text goes into the logs only when configured (log_message_text)
        self._scrubbing: asyncio.Task[None] | None = None

    def validate(self, text: str, what: str = "the message", length: bool = True) -> None:
        """Refuse, before anything is stored, a text that cannot be one (and with `length`, a too long one)."""
        check_text(text, what)
        if not text.strip():
            raise InvalidMessage(f"{what} has no text: please write what you would like to say")
        if length and len(text) > self.limits.max_text_chars:
            raise InvalidMessage(f"{what} is longer than {self.limits.max_text_chars} characters")

    def admit(self) -> None:
        """Capacity is checked before anything is accepted, so that "busy" leaves the event retryable;
        webhooks ask too, to answer the platform 503 (it redelivers) instead of acking a message
        that cannot be answered now (raises Busy / Unavailable)."""
        health = self.engine.health()
        if health.state == "loading":
            raise Busy("the model is still loading, please retry in a moment")
        if health.state == "dead":
            raise Unavailable(f"the model is not running ({health.detail})")
        if health.full:
            raise Busy()

    async def health(self) -> Health:
        """The engine's health, or dead when the database does not answer."""
        try:
            await self.memory.db.ping()
        except Exception as exc:
            return Health("dead", f"database unreachable: {exc}")
        health = self.engine.health()
        return health if health.state != "dead" else Health("dead", f"model not running: {health.detail}")

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        """Moods of texts that are not part of a conversation (nothing is stored)."""
        for n, text in enumerate(texts, 1):
            self.validate(text, f"text {n}" if len(texts) > 1 else "the text")
        self.admit()
        return await self.engine.classify(texts)

    async def handle(self, msg: IncomingMessage) -> Reply:
        """Answer one message and return the whole reply."""
        async for item in self.stream(msg):
            if isinstance(item, Reply):
                return item
        raise AssertionError("Bot.stream ended without a Reply")

    async def stream(self, msg: IncomingMessage) -> AsyncGenerator[Event]:
        """Answer one message, yielding the mood, then the reply text as it is generated, then the Reply.
        A message over `max_text_chars` is stored and answered with that limit (a chat user cannot
        be answered with a status code; the web API refuses it with a 422 at its edge instead)."""
        self._check(msg)
        lock = self._locks.setdefault(msg.key, asyncio.Lock())
        # one turn at a time per conversation, so each sees the one before: in this process, and
        # across replicas through the database (core/leases.py)
        async with lock, self.memory.turn_lock(msg.key):
            clock = _Clock()
            self.admit()
            accepted = await self.ledger.accept(msg)
            if (early := await self._early(msg, accepted)) is not None:
                yield early
                return
            assert isinstance(accepted, Accepted)
            turn = _Turn(msg, accepted)
            try:
                async with contextlib.aclosing(self._answer(turn, clock)) as answering:
                    async for item in answering:
                        yield item
                text, failed = "".join(turn.parts).strip(), False
            except (GeneratorExit, asyncio.CancelledError):  # the client left, or the server is stopping
                await asyncio.shield(self.ledger.release(accepted))  # the retry answers it
                log.info("the reply was abandoned; the event is left for a retry", extra=_fields(msg))
                raise
            except Exception as exc:
                if isinstance(exc, Unavailable) and not turn.parts:  # nothing answered: a retry is answered afresh
                    await self.ledger.release(accepted)
                    log.info("model unavailable; the event is left for a retry", extra=_fields(msg))
                    raise
                log.exception("answering failed", extra=_fields(msg))
                text, failed = APOLOGY, True
            yield await self._record(turn, text, failed, clock)

    async def _early(self, msg: IncomingMessage, accepted: Accepted | Seen) -> Reply | None:
        """The answer without the model: a duplicate's stored reply, or the length limit."""
        if not isinstance(accepted, Accepted):
            metrics.DUPLICATES.labels(msg.platform).inc()
            log.info("duplicate event answered from storage", extra=_fields(msg, duplicate=True))
            return Reply(accepted.reply, accepted.mood, duplicate=True)
        metrics.MESSAGES_IN.labels(msg.platform).inc()
        if accepted.retry:
            log.info("answering an event accepted before and never answered", extra=_fields(msg))
        if len(accepted.text) <= self.limits.max_text_chars:
            return None
        line = TOO_LONG.format(limit=self.limits.max_text_chars)
        await self.ledger.record_reply(accepted, line, failed=False)
        log.info("message over max_text_chars answered with the limit", extra=_fields(msg))
        return Reply(line, None)

    async def _answer(self, turn: _Turn, clock: _Clock) -> AsyncGenerator[Event]:
        """Mood -> escalation -> route -> the pause line, the knowledge base's answer or the model's."""
        with clock.classifying():
            [mood] = await self.engine.classify([turn.accepted.text])
        turn.mood = mood
        metrics.MOODS.labels(turn.msg.platform, mood.label).inc()
        yield mood
        if await self._rated(turn):  # the answer to the rating question: thanked, nothing else (and its
            turn.parts.append(self.outcome.rating_thanks)  # mood is not stored: it is no part of the trajectory)
            yield self.outcome.rating_thanks
            return
        await self.memory.set_mood(turn.accepted.message_id, mood)
        state = await self._escalate(turn, mood)
        away = state.open and self.hours.away(self._destinations(), utcnow()) is not None
        turn.route = route(self.policy, state, turn.escalated, mood.label, away)
        if state.open and not turn.escalated and state.escalation_id is not None:
            await self.handoff.customer_turn(state.escalation_id, turn.accepted.message_id)
        if turn.route.paused:
            parts = [turn.route.line] if turn.route.line else []
        elif turn.escalated and turn.took_offer:
            parts = []  # "yes" to the offer: the escalation's line is the answer
        elif found := await self._knowledge(turn.accepted.text):
            if not found.grounded and not state.open:  # no answer: the line offers a person
                if turn.route.soothing:  # an upset customer is handed to one at once
                    turn.escalated = await self._open(turn, "no_answer", [mood])
                elif not turn.offered:
                    await self.offers.offer(turn.accepted.conversation_id, turn.accepted.message_id, "no_answer")
                turn.offered = ""  # the line asks already
            assert self.knowledge is not None
            opening = (
                f"{self.knowledge.settings.soothing_opening}\n\n" if found.grounded and turn.route.soothing else ""
            )
            turn.answer, parts = found, [opening + found.text]
        else:
            parts = []
            accepted = turn.accepted
            history = await self.memory.history(
                accepted.conversation_id, accepted.context_from, accepted.message_id, self.limits.history_messages
            )
            chat_mood = Mood("negative", mood.scores) if turn.route.soothing else mood
            async for chunk in clock.replying(self.engine.reply(build_chat(self.prompts, chat_mood, history,
                                                                             turn.accepted.text))):  # fmt: skip
                turn.parts.append(chunk)
                yield chunk
        if self.policy is not None and not turn.route.paused:
            line = self.policy.offer_line if turn.offered else ""
            line = await self._escalated_line(turn) if turn.escalated else line
            parts += [("\n\n" if turn.parts or parts else "") + line] if line else []
        for part in parts:
            turn.parts.append(part)
            yield part

    async def _record(self, turn: _Turn, text: str, failed: bool, clock: _Clock) -> Reply:
        """Store the reply (not stored: a retry of the event is answered afresh), log and count it."""
        msg, answer = turn.msg, turn.answer
        sources = answer.sources if answer is not None and not failed else ()
        try:
            answer_id = await self.ledger.record_reply(
                turn.accepted, text, failed, sources, answer.kind if answer else None
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.ledger.release(turn.accepted))
            raise
        paused = turn.route.paused
        outcome = "failed" if failed else "paused" if paused and not text else "answered"
        metrics.MESSAGES_OUT.labels(msg.platform, outcome).inc()
        mood = turn.mood
        log.info("message handled", extra=_fields(
            msg, mood=mood.label if mood else None, mood_score=round(mood.score, 4) if mood else None,
            outcome=outcome, escalated=turn.escalated, **clock.report(), reply_chars=len(text),
            **({"text": turn.accepted.text} if self.log_text else {}),
        ))  # fmt: skip
        grounded = answer is not None and answer.grounded and not failed
        return Reply(text, mood, escalated=turn.escalated, offered=turn.offered, failed=failed,
                     paused=paused and not text, sources=sources, grounded=grounded, answer_id=answer_id)  # fmt: skip

    async def intake(self, msg: IncomingMessage) -> bool:
        """Store a platform's message before the platform is told it arrived (webhooks answer 200,
        polling confirms it, only after this); `stream` answers it later, or recovery does if this
        process dies first. False when it was stored before (a redelivery). Storing does not wait
        for the model: a message that arrives while it is full is answered when it has room."""
        self._check(msg)
        return await self.ledger.store(msg)

    def _check(self, msg: IncomingMessage) -> None:
        self.validate(msg.text, length=False)
        if msg.event_id.startswith(INTERNAL_EVENTS):  # the hand-off's own turns: a customer cannot pre-empt them
            raise InvalidMessage(f"event ids starting with {' or '.join(INTERNAL_EVENTS)} are reserved")
        for what, value in (("the conversation id", msg.key.chat_id), ("the thread id", msg.key.thread_id),
                            ("the user id", msg.user_id), ("the user name", msg.user_name),
                            ("the event id", msg.event_id), ("the conversation's reference", msg.ref)):  # fmt: skip
            check_text(value, what)

    async def _escalate(self, turn: _Turn, mood: Mood) -> EscalationState:
        """The policy's decision on this message: escalate (`turn.escalated`), offer a person (recorded,
        `turn.offered`) or neither; the conversation's escalation state after it."""
        msg, accepted, policy = turn.msg, turn.accepted, self.policy
        if policy is None or not policy.enabled:
            return EscalationState()
        state = await self.escalations.state(accepted.conversation_id)
        conversation, now = accepted.conversation_id, utcnow()
        moods = await self.memory.conversation_moods(conversation, msg.user_id, policy.window + policy.reset_streak)
        offers = await self.offers.state(conversation, accepted.message_id, now - timedelta(hours=policy.offer_hours))
        earlier = await self.memory.customer_texts(conversation, msg.user_id, accepted.message_id, policy.loop_window)
        decision = decide(policy, moods, accepted.text, state, now, offers, earlier)
        if offers.pending_id is not None and not state.open:
            await self.offers.answered(offers.pending_id, "yes" if decision.escalate else "no")
        if decision.action == "offer":
            await self.offers.offer(conversation, accepted.message_id, decision.reason)
            turn.offered = decision.reason
            log.info("a person offered", extra=_fields(msg, reason=decision.reason))
        if not decision.escalate:
            return state
        turn.escalated = await self._open(turn, decision.reason, moods[-policy.window :])
        turn.took_offer = offers.pending_id is not None
        return await self.escalations.state(conversation)

    def _destinations(self) -> Sequence[str]:
        return self.notifier.destinations if self.notifier else ()

    async def _escalated_line(self, turn: _Turn) -> str:
        """What the customer is told as the conversation escalates: a person will follow up, and the
        usual wait at this hour; or out of hours when people are back (and what to have ready for them)."""
        assert self.policy is not None
        if turn.back_at is None:
            handoff = self.handoff.settings
            wait = await waits.expected_minutes(self.memory.db, self.hours, handoff, self._destinations(), utcnow())
            return f"{self.policy.notify_line} {handoff.wait_line.format(wait=waits.spoken(wait))}" if wait else (
                self.policy.notify_line)  # fmt: skip
        hours = self.hours.settings
        line = hours.closed_line.format(opens=self.hours.when(turn.back_at, utcnow()))
        fields = " and ".join(", ".join(hours.ask_for).rsplit(", ", 1))
        return f"{line} {hours.ask_line.format(fields=fields)}" if fields else line

    async def _open(self, turn: _Turn, reason: str, moods: Sequence[Mood]) -> bool:
        """Open an escalation (False when one is open already, or the visitor's limit is spent); out of
        a desk's hours its page waits for opening time (`turn.back_at`: when people are back)."""
        msg, accepted, now = turn.msg, turn.accepted, utcnow()
        if msg.origin and not self._public.allow(msg.user_id, msg.origin, now):
            log.warning("escalation refused: this visitor's hourly limit", extra=_fields(msg, reason=reason))
            return False
        destinations = self._destinations()
        held = self.hours.held(destinations, now, reason)
        turn.back_at = min(held.values()) if destinations and len(held) == len(destinations) else None
        scores = [dict(m.scores) for m in moods]
        record = await self.escalations.open(accepted.conversation_id, reason, scores, destinations, held)
        if record is None:
            return False
        metrics.ESCALATIONS.labels(msg.platform, reason).inc()
        log.info("conversation escalated", extra=_fields(msg, reason=reason, escalation_id=record.id))
        await self.handoff.assignments.assign(record.id)  # to an on-shift agent (none: the first one back)
        if self.notifier is not None:
            self.notifier.changed(None)
        return True

    async def _rated(self, turn: _Turn) -> bool:
        """Whether the message answers the rating question asked after a hand-off (a 1-5 within
        `rating_hours`, the first answer only): then it is stored as the rating."""
        value = parse_rating(turn.accepted.text) if self.outcome.ask_rating else None
        if value is None:
            return False
        since = utcnow() - timedelta(hours=self.outcome.rating_hours)
        asked = await self.feedback.rating_prompt(turn.accepted.conversation_id, since)
        if asked is None or not await self.feedback.rate(asked, turn.accepted.conversation_id, turn.msg.user_id, value):
            return False
        metrics.RATINGS.labels(turn.msg.platform, str(value)).inc()
        log.info("rating after a hand-off", extra=_fields(turn.msg, rating=value))
        return True

    def _asks_for_human(self, text: str) -> bool:  # a direct request or a bare "agent"
        return self.policy is not None and asks_for_human(text, self.policy)

    async def _knowledge(self, text: str) -> Answer | None:
        """The knowledge base's answer; None when there is none to ask, when the message asks for a
        person (the person answers it), or when it has nothing for a message that is no question
        (small talk goes to the model, as without a knowledge base)."""
        if self.knowledge is None or self._asks_for_human(text) or not await self.knowledge.ready():
            return None
        found = await self.knowledge.answer(text)
        return found if found.grounded or is_question(text) else None

    async def give_feedback(self, key: ConversationKey, answer_id: int, user_id: str, thumb: str) -> Given:
        """A thumb ("up" / "down") from `user_id` on the bot's answer `answer_id` in the conversation
        `key` (a button under it); a repeated click changes nothing (InvalidMessage: not an answer there)."""
        check_text(user_id, "the user id")
        given = await self.feedback.give(key, answer_id, user_id, thumb)
        if given.changed:
            metrics.FEEDBACK.labels(key.platform, thumb).inc()
            log.info("feedback on an answer", extra={"platform": key.platform, "answer_id": answer_id, "thumb": thumb})
        return given

    async def reset(self, key: ConversationKey, user_id: str | None = None) -> None:
        """A fresh context for the conversation; with `user_id`, for each of the chat's threads they wrote in."""
        await self.memory.reset(key, user_id)

    async def forget(self, platform: str, user_id: str) -> int:
        """Delete everything a user wrote on a platform, the bot's answers to it, and escalations left
        with nothing to show; each conversation under its turn lock, so that a reply being written
        meanwhile is finished (and then deleted) first. Returns how many messages went."""
        deleted = 0
        for key in await self.memory.conversations_of(platform, user_id):

            async def copies(session: AsyncSession, conversation_id: int, ids: list[int]) -> None:
                await erase(session, conversation_id, ids, user_id)  # where the support side showed them
                await forget_feedback(session, conversation_id, user_id)  # their thumbs on any answer
                await forget_notes(session, conversation_id)  # what agents noted about them
                await reports.archive(session, conversation_id, ids, self.outcome.return_hours, self._asks_for_human)

            async with self._locks.setdefault(key, asyncio.Lock()), self.memory.turn_lock(key):
                count, emptied = await self.memory.forget(key, user_id, before=copies)
                if emptied is not None:
                    await self.escalations.forget(emptied)
            deleted += count
        if self.notifier is not None:
            self.notifier.changed(None)
        if not await self.memory.scrub():
            log.warning("forget: a reader kept the SQLite log; checkpointing again until it is clean")
            self._scrubbing = self._scrubbing or asyncio.create_task(self._scrub_until_clean())
        return deleted

    async def _scrub_until_clean(self, every: float = 1.0, tries: int = 600) -> None:
        try:
            for _ in range(tries):
                await asyncio.sleep(every)
                if await self.memory.scrub():
                    log.info("forget: the SQLite log is clean")
                    return
            log.error("forget: the SQLite log still holds deleted text after %d checkpoints", tries)
        finally:
            self._scrubbing = None

    async def recent_moods(self, platform: str, user_id: str, limit: int = 10) -> list[Mood]:
        return await self.memory.moods(platform, user_id, limit)

    async def knows(self, key: ConversationKey) -> bool:
        return await self.memory.knows(key)


@dataclass
class _Turn:
    """One message on its way through `stream`: what each step found."""

    msg: IncomingMessage
    accepted: Accepted
    mood: Mood | None = None
    escalated: bool = False
    offered: str = ""  # the reason a person was offered in this answer
    took_offer: bool = False  # the message said yes to an offer
    back_at: datetime | None = None  # it escalated out of every desk's hours: when people are back
    route: Route = field(default_factory=Route)
    answer: Answer | None = None
    parts: list[str] = field(default_factory=list)  # what the customer was shown, in order


class _Clock:
    """A turn's timings, each observed in its histogram once: classify, first token, total."""

    def __init__(self) -> None:
        self.started, self.seconds = time.perf_counter(), dict[str, float]()

    @contextlib.contextmanager
    def classifying(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds["classify"] = time.perf_counter() - started
        metrics.CLASSIFY_SECONDS.observe(self.seconds["classify"])

    async def replying(self, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        """The model's chunks, timing the first one and the whole reply."""
        started = time.perf_counter()
        async for chunk in chunks:
            if "first_token" not in self.seconds:
                self.seconds["first_token"] = time.perf_counter() - started
                metrics.FIRST_TOKEN_SECONDS.observe(self.seconds["first_token"])
            yield chunk
        metrics.REPLY_SECONDS.observe(time.perf_counter() - started)

    def report(self) -> dict[str, float | None]:
        total = time.perf_counter() - self.started
        return {"classify_ms": _ms(self.seconds.get("classify")),
                "first_token_ms": _ms(self.seconds.get("first_token")), "total_ms": _ms(total)}  # fmt: skip


def _fields(msg: IncomingMessage, **extra: object) -> dict[str, object]:
    """Structured log fields for one event (the JSON formatter writes them as keys)."""
    key = msg.key
    conversation = f"{key.platform}:{key.chat_id}" + (f":{key.thread_id}" if key.thread_id else "")
    return {"platform": msg.platform, "event_id": msg.event_id, "conversation": conversation, **extra}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)
