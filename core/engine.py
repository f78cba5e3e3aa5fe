"""What the core needs from a language model: a protocol of four calls, and no implementation.

The implementations live in their own modules (`core.local` in this process, `core.remote` for an
OpenAI-compatible server); the composition root's factory picks one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from core.events import ChatMessage, Mood

State = Literal["ready", "loading", "dead"]


@dataclass(frozen=True)
class Health:
    """Whether the engine can take work now, and how much it holds (`queued` of `capacity`)."""

    state: State
    detail: str = ""
    queued: int = 0
    capacity: int = 0

    @property
    def full(self) -> bool:
        return self.capacity > 0 and self.queued >= self.capacity


class Engine(Protocol):
    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        """The mood of each text: a label and probabilities over negative / neutral / positive."""
        ...

    def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Stream the assistant's answer to a chat, trimmed to the engine's context budget."""
        ...

    def health(self) -> Health:
        """Ready, still loading, or dead (its worker stopped); cheap, never blocks."""
        ...

    async def aclose(self) -> None:
        """Release the model and its worker."""
        ...
