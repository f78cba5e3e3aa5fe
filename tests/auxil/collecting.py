"""An output channel that keeps what it was sent: what delivery looks like without a platform."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.delivery import OutputChannel, Sent
from core.events import ConversationKey


@dataclass
class Posted:
    conversation: ConversationKey
    reply_to: str | None
    versions: list[str] = field(default_factory=list)
    markdown: bool = False

    @property
    def text(self) -> str:
        return self.versions[-1]


class CollectingChannel(OutputChannel):
    def __init__(self, limit: int = 4000, interval: float = 0.0) -> None:
        self.limit, self.interval = limit, interval
        self.posted: dict[str, Posted] = {}
        self.typing_seen: list[ConversationKey] = []
        self._ids = itertools.count(1)

    @property
    def messages(self) -> list[Posted]:
        return list(self.posted.values())

    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        assert len(text) <= self.limit
        sent = Sent(conversation, str(next(self._ids)))
        self.posted[sent.id] = Posted(conversation, reply_to, [text], markdown)
        return sent

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        assert len(text) <= self.limit
        message = self.posted[sent.id]
        message.versions.append(text)
        message.markdown = markdown
        return sent

    @contextlib.asynccontextmanager
    async def typing(self, conversation: ConversationKey) -> AsyncIterator[None]:
        self.typing_seen.append(conversation)
        yield
