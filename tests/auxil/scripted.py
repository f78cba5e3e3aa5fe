"""An engine whose moods and replies a test writes: for the pipeline and its error paths, where
what matters is what the Bot does with a mood, not which mood the model reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from core.engine import Health
from core.errors import Busy
from core.events import ChatMessage, Mood

NEGATIVE = Mood("negative", {"negative": 0.95, "neutral": 0.03, "positive": 0.02})
MILD_NEGATIVE = Mood("negative", {"negative": 0.6, "neutral": 0.3, "positive": 0.1})
NEUTRAL = Mood("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1})
POSITIVE = Mood("positive", {"negative": 0.02, "neutral": 0.08, "positive": 0.9})


class ScriptedEngine:
    """`moods` maps a text to its mood (others are neutral); the reply echoes the last user turn
    in a few chunks. `busy` makes the engine full; `health_state` what it says of itself."""

    def __init__(self, moods: dict[str, Mood] | None = None, reply: Callable[[str], str] | None = None) -> None:
        self.moods = moods or {}
        self.answer = reply or (lambda text: f"You said: {text}")
        self.chats: list[list[ChatMessage]] = []
        self.classified: list[str] = []
        self.busy = False
        self.state: Health = Health("ready", capacity=8)

    def health(self) -> Health:
        return Health(self.state.state, self.state.detail, 8 if self.busy else 0, 8)

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        if self.busy:
            raise Busy()
        self.classified += texts
        return [self.moods.get(text, NEUTRAL) for text in texts]

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        if self.busy:
            raise Busy()
        self.chats.append(list(messages))
        for word in self.answer(messages[-1].content).split(" "):
            await asyncio.sleep(0)
            yield word + " "

    async def aclose(self) -> None:
        pass
