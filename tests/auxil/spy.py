"""A pass-through around the real engine that records what it was asked; not a fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from core.engine import Engine, Health
from core.events import ChatMessage, Mood


class SpyEngine:
    def __init__(self, real: Engine, fail_reply: bool = False) -> None:
        self.real = real
        self.chats: list[list[ChatMessage]] = []
        self.fail_reply = fail_reply

    def health(self) -> Health:
        return self.real.health()

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        return await self.real.classify(texts)

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        self.chats.append(list(messages))
        async for chunk in self.real.reply(messages):
            yield chunk
            if self.fail_reply:
                raise RuntimeError("the model fell over mid-reply")

    async def aclose(self) -> None:
        pass
