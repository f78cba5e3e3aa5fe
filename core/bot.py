"""The one core entry point: dedupe -> store -> classify -> pick prompt -> reply -> store."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator

from core.engine import Engine
from core.errors import InvalidMessage
from core.events import ConversationKey, IncomingMessage, Mood, Reply
from core.memory import Accepted, Memory
from core.prompts import build_chat
from core.settings import MemorySettings, PromptSettings

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side while answering. Please try again in a moment."

Event = Mood | str | Reply
"""What `Bot.stream` yields: the mood first, then text chunks, and the final Reply last."""


class Bot:
    """Platform-free: adapters turn platform payloads into IncomingMessage and send back the Reply."""

    def __init__(self, engine: Engine, memory: Memory, prompts: PromptSettings, limits: MemorySettings) -> None:
        self.engine, self.memory, self.prompts, self.limits = engine, memory, prompts, limits
        self._locks: weakref.WeakValueDictionary[ConversationKey, asyncio.Lock] = weakref.WeakValueDictionary()

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
            mood, parts = None, []
            try:
                [mood] = await self.engine.classify([msg.text])
                yield mood
                await self.memory.set_mood(accepted.message_id, mood)
                history = await self.memory.history(accepted, self.limits.history_messages)
                async for chunk in self.engine.reply(build_chat(self.prompts, mood, history, msg.text)):
                    parts.append(chunk)
                    yield chunk
                text, failed = "".join(parts).strip(), False
            except Exception:
                log.exception("answering %s/%s failed", msg.platform, msg.event_id)
                text, failed = APOLOGY, True
            await self.memory.record_reply(msg, accepted, text, failed)
            yield Reply(text, mood, failed=failed)

    async def reset(self, key: ConversationKey) -> None:
        await self.memory.reset(key)

    async def forget(self, platform: str, user_id: str) -> int:
        return await self.memory.forget(platform, user_id)

    async def recent_moods(self, platform: str, user_id: str, limit: int = 10) -> list[Mood]:
        return await self.memory.moods(platform, user_id, limit)

    async def knows(self, key: ConversationKey) -> bool:
        return await self.memory.knows(key)
