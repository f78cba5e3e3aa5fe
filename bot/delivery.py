"""Delivery, written once: a streamed reply shown in one message that grows (edits at most every
`interval` seconds), split at the platform's limit, nothing sent for duplicates or paused chats.

Each platform implements an `OutputChannel` — `post` a text to a conversation, `edit` what it
posted, optionally show `typing` — and the base owns the policy (Rasa's `OutputChannel` shape).
`post` is also how anything else (notices, a person's answer) reaches a conversation.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from core.bot import Event
from core.errors import BotError
from core.events import ConversationKey, Reply

BOUNDARIES = ("\n\n", "\n", ". ", "! ", "? ", "。", " ")  # strongest first


@dataclass(frozen=True)
class Sent:
    """A message the bot posted: where, and the platform's id for it (to edit it)."""

    conversation: ConversationKey
    id: str


class OutputChannel(ABC):
    limit = 4000  # characters per message
    interval = 1.5  # seconds between edits while a reply streams

    @abstractmethod
    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        """Send `text` (at most `limit` characters) to the conversation, as a reply to `reply_to` if given."""

    @abstractmethod
    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        """Replace the text of a message this channel posted."""

    def typing(self, conversation: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Shows that the bot is writing, for as long as it is entered (no-op where a platform has none)."""
        return contextlib.nullcontext()

    async def send(self, conversation: ConversationKey, text: str, *, reply_to: str | None = None) -> list[Sent]:
        """A whole text, in as many messages as the limit needs."""
        return [await self.post(conversation, piece, reply_to=reply_to) for piece in split(text, self.limit)]


async def deliver(
    channel: OutputChannel, conversation: ConversationKey, events: AsyncIterator[Event], reply_to: str | None = None
) -> Reply:
    """Show the reply as it streams in one message, then its final text (the rest in more messages)."""
    sent: Sent | None = None
    reply = None
    async with channel.typing(conversation):
        async for item in previews(events, channel.interval):
            if isinstance(item, Reply):
                reply = item
                continue
            preview = split(item, channel.limit)[0]
            if sent is None:
                sent = await channel.post(conversation, preview, reply_to=reply_to)
            else:
                sent = await channel.edit(sent, preview)
    if reply is None:
        raise BotError("the core ended without a reply")
    if reply.duplicate or reply.paused:
        return reply  # answered on the first delivery, or a person has taken over
    first, *rest = split(reply.text, channel.limit) or ["…"]
    if sent is None:
        await channel.post(conversation, first, reply_to=reply_to, markdown=True)
    else:
        await channel.edit(sent, first, markdown=True)
    for piece in rest:
        await channel.post(conversation, piece, reply_to=reply_to, markdown=True)
    return reply


def split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at a paragraph, line, sentence or word boundary."""
    pieces, rest = [], text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        # the strongest boundary in the second half of the window, else a hard cut
        cuts = (window.rfind(sep) + len(sep) for sep in BOUNDARIES)
        cut = next((c for c in cuts if c > limit // 2), limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*pieces, rest] if rest else pieces


async def previews(events: AsyncIterator[Event], interval: float) -> AsyncIterator[str | Reply]:
    """The reply's text so far, at most once per `interval` seconds, then the final Reply."""
    text, shown = "", float("-inf")
    async for item in events:
        if isinstance(item, Reply):
            yield item
        elif isinstance(item, str):
            text += item
            if text.strip() and time.monotonic() - shown >= interval:
                shown = time.monotonic()
                yield text
