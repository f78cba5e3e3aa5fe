"""The one core entry point: dedupe -> store -> classify -> pick prompt -> reply -> store."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from core.engine import Engine
from core.errors import InvalidMessage
from core.escalation import decide
from core.events import ConversationKey, IncomingMessage, Mood, Reply, utcnow
from core.memory import Accepted, EscalationRecord, EscalationStore, Memory
from core.prompts import build_chat
from core.settings import EscalationSettings, MemorySettings, PromptSettings

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side while answering. Please try again in a moment."

Event = Mood | str | Reply
"""What `Bot.stream` yields: the mood first, then text chunks, and the final Reply last."""


class Notifier(Protocol):
    """Tells the support team about a new escalation; must not raise (failures are retried later)."""

    @property
    def destinations(self) -> Sequence[str]: ...

    async def escalation_opened(self, escalation: EscalationRecord) -> None: ...


class Bot:
    """Platform-free: adapters turn platform payloads into IncomingMessage and send back the Reply."""

    def __init__(
        self,
        engine: Engine,
        memory: Memory,
        prompts: PromptSettings,
        limits: MemorySettings,
        escalation: EscalationSettings | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine, self.memory, self.prompts, self.limits = engine, memory, prompts, limits
        self.policy = escalation
        self.escalations = EscalationStore(memory)
        self.notifier = notifier
        self._locks: weakref.WeakValueDictionary[ConversationKey, asyncio.Lock] = weakref.WeakValueDictionary()
        self._background: set[asyncio.Task[None]] = set()

    def validate(self, msg: IncomingMessage) -> None:
        if not msg.text.strip():
            raise InvalidMessage("the message text is empty")
        if len(msg.text) > self.limits.max_text_chars:
            raise InvalidMessage(f"the message is longer than {self.limits.max_text_chars} characters")

    async def handle(self, msg: IncomingMessage) -> Reply:
        """Answer one message and return the whole reply."""
        async for item in self.stream(msg):
            if isinstance(item, Reply):
                return item
        raise AssertionError("Bot.stream ended without a Reply")

    async def stream(self, msg: IncomingMessage) -> AsyncIterator[Event]:
        """Answer one message, yielding the mood, then the reply text as it is generated, then the Reply."""
        self.validate(msg)
        lock = self._locks.setdefault(msg.key, asyncio.Lock())
        async with lock:  # one turn at a time per conversation, so each sees the one before
            accepted = await self.memory.accept(msg)
            if not isinstance(accepted, Accepted):
                log.info("duplicate event %s/%s answered from storage", msg.platform, msg.event_id)
                yield Reply(accepted.reply, accepted.mood, duplicate=True)
                return
            mood, parts, escalated, paused = None, [], False, False
            try:
                [mood] = await self.engine.classify([msg.text])
                yield mood
                await self.memory.set_mood(accepted.message_id, mood)
                escalated, handed_off = await self._escalate(msg, accepted, mood)
                paused = handed_off and self.policy is not None and self.policy.mode == "pause"
                if paused and self.policy is not None:
                    parts = [self.policy.pause_line] if escalated else []
                    for part in parts:
                        yield part
                else:
                    history = await self.memory.history(accepted, self.limits.history_messages)
                    chat_mood = Mood("negative", mood.scores) if handed_off else mood  # soothing once escalated
                    async for chunk in self.engine.reply(build_chat(self.prompts, chat_mood, history, msg.text)):
                        parts.append(chunk)
                        yield chunk
                    if escalated and self.policy is not None:
                        parts.append(f"\n\n{self.policy.notify_line}")
                        yield parts[-1]
                text, failed = "".join(parts).strip(), False
            except Exception:
                log.exception("answering %s/%s failed", msg.platform, msg.event_id)
                text, failed = APOLOGY, True
            await self.memory.record_reply(msg, accepted, text, failed)
            yield Reply(text, mood, escalated=escalated, failed=failed, paused=paused and not text)

    async def _escalate(self, msg: IncomingMessage, accepted: Accepted, mood: Mood) -> tuple[bool, bool]:
        """(escalated by this message, the conversation is with a human now)."""
        if self.policy is None or not self.policy.enabled:
            return False, False
        state = await self.escalations.state(accepted.conversation_id)
        window = self.policy.window + self.policy.reset_streak
        moods = await self.memory.conversation_moods(accepted.conversation_id, msg.user_id, window)
        decision = decide(self.policy, moods, msg.text, state, utcnow())
        if not decision.escalate:
            return False, state.open
        scores = [dict(m.scores) for m in moods[-self.policy.window :]]
        destinations = self.notifier.destinations if self.notifier else ()
        record = await self.escalations.open(accepted.conversation_id, decision.reason, scores, destinations)
        if record is None:
            return False, True
        log.info("conversation %s escalated: %s", record.key, decision.reason)
        if self.notifier is not None:
            task = asyncio.create_task(self.notifier.escalation_opened(record))
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)
        return True, True

    async def resolve(self, escalation_id: int, by: str) -> EscalationRecord | None:
        """An operator closes an escalation; the bot answers that conversation again."""
        return await self.escalations.resolve(escalation_id, by)

    async def reset(self, key: ConversationKey) -> None:
        await self.memory.reset(key)

    async def forget(self, platform: str, user_id: str) -> int:
        return await self.memory.forget(platform, user_id)

    async def recent_moods(self, platform: str, user_id: str, limit: int = 10) -> list[Mood]:
        return await self.memory.moods(platform, user_id, limit)

    async def knows(self, key: ConversationKey) -> bool:
        return await self.memory.knows(key)
