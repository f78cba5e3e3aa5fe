"""Delivery, written once: a streamed reply shown in one message that grows (edits at most every
`interval` seconds), split at the platform's limit, nothing sent for duplicates or paused chats.

Each platform implements an `OutputChannel` — `post` a text to a conversation, `edit` what it
posted, optionally show `typing` — and the base owns the policy (Rasa's `OutputChannel` shape).
`post` is also how anything else (notices, a person's answer) reaches a conversation.

Every message posted for an event is noted (its platform id, on the event's `reply` row in the
outbox) as soon as it is posted, and the reply is marked delivered once it is wholly shown; what a
crash left is finished by the outbox's dispatcher (bot/notify.py) with `OutputChannel.show`, which
edits what was posted instead of posting it again: one rule for replies and relays alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from core.bot import Bot, Event
from core.errors import BotError, Busy
from core.events import ConversationKey, IncomingMessage, Reply
from core.memory import StoredMessage

log = logging.getLogger(__name__)

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

    async def delete(self, sent: Sent) -> None:  # noqa: B027 - optional: a platform that cannot leaves it
        """Delete a message this channel posted (`/forget`)."""

    async def ask_feedback(self, sent: Sent, text: str, answer_id: int, *, markdown: bool = False) -> None:  # noqa: B027
        """Show 👍 / 👎 under a posted answer whose text is `text`; each button's data is
        `feedback_data(answer_id, thumb)`. A platform without buttons leaves it (optional)."""

    def typing(self, conversation: ConversationKey) -> AbstractAsyncContextManager[None]:
        """Shows that the bot is writing, for as long as it is entered (no-op where a platform has none)."""
        return contextlib.nullcontext()

    async def send(self, conversation: ConversationKey, text: str, *, reply_to: str | None = None) -> list[Sent]:
        """A whole text, in as many messages as the limit needs."""
        return [await self.post(conversation, piece, reply_to=reply_to) for piece in split(text, self.limit)]

    async def show(
        self, conversation: ConversationKey, text: str, posted: Sequence[str], note: Note,
        *, reply_to: str | None = None, markdown: bool = False,
    ) -> list[str]:  # fmt: skip
        """A whole stored text, retried: what an earlier attempt `posted` of it is edited, the rest
        posted, each new post `note`d at once. The ids of every piece, in order."""
        shown = _Shown(self, conversation, reply_to, list(posted), note)
        await shown.show(split(text, self.limit) or ["…"], markdown=markdown)
        return [sent.id for sent in shown.sent]


class Followed(OutputChannel):
    """A conversation whose page follows the database (the web chat, the terminal): what is stored
    is shown there, so a message for it (an agent's, a hand-off line) has nothing to post."""

    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        return Sent(conversation, "")

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        return sent

    async def send(self, conversation: ConversationKey, text: str, *, reply_to: str | None = None) -> list[Sent]:
        return []

    async def show(
        self, conversation: ConversationKey, text: str, posted: Sequence[str], note: Note,
        *, reply_to: str | None = None, markdown: bool = False,
    ) -> list[str]:  # fmt: skip
        return []


async def deliver(channel: OutputChannel, bot: Bot, msg: IncomingMessage, reply_to: str | None = None) -> Reply | None:
    """Answer a stored platform message: the reply as it streams in one message, then its final
    text (the rest in more messages). None when the model is busy: the message stays stored and
    recovery answers it (a platform user cannot be asked to send it again)."""
    posted = await bot.ledger.sent_ids(msg.key, msg.event_id)
    shown = _Shown(channel, msg.key, reply_to, posted, lambda id: bot.ledger.posted(msg.key, msg.event_id, id))
    reply = None
    try:
        async with channel.typing(msg.key):
            async for item in previews(bot.stream(msg), channel.interval):
                if isinstance(item, Reply):
                    reply = item
                else:
                    await shown.show(split(item, channel.limit)[:1], markdown=False)
    except Busy:
        log.info("model busy: the stored message is left for recovery (%s:%s)", msg.platform, msg.event_id)
        return None
    if reply is None:
        raise BotError("the core ended without a reply")
    if reply.duplicate or reply.paused:
        return reply  # answered on the first delivery (the outbox delivers what it owes), or a person took over
    pieces = split(with_sources(reply), channel.limit) or ["…"]
    await shown.show(pieces, markdown=markup(reply.sources))
    await bot.ledger.delivered(msg.key, msg.event_id)
    if bot.outcome.feedback_buttons and reply.answer_id is not None and not reply.failed and shown.sent:
        try:  # the answer is delivered: buttons that fail to show cost nothing else
            await channel.ask_feedback(shown.sent[-1], pieces[-1], reply.answer_id, markdown=markup(reply.sources))
        except Exception as exc:
            log.warning("feedback buttons not shown under answer %s: %s", reply.answer_id, exc)
    return reply


FEEDBACK_THANKS = "Thanks for your feedback!"


def feedback_data(answer_id: int, thumb: str) -> str:
    """A feedback button's data (under Telegram's 64 bytes): which answer, which thumb."""
    return f"fb:{answer_id}:{thumb}"


async def feedback_click(bot: Bot, key: ConversationKey, data: str, user_id: str) -> str | None:
    """A feedback button pressed in the conversation `key`: stored (a repeat changes nothing), and
    what the person is told; None when `data` is no feedback button's."""
    prefix, _, rest = data.partition(":")
    number, _, thumb = rest.partition(":")
    if prefix != "fb" or not number.isdigit():
        return None
    try:
        await bot.give_feedback(key, int(number), user_id, thumb)
    except BotError as exc:
        return str(exc)
    return FEEDBACK_THANKS


def with_sources(reply: Reply | StoredMessage) -> str:
    """The reply's text, and under it the knowledge-base documents it comes from (title and link)."""
    if not reply.sources:
        return reply.text
    cited = [f"• {s.title} — {s.url}" if s.url else f"• {s.title}" for s in reply.sources]
    return "\n".join([reply.text, "", "Sources:", *cited])


def markup(sources: Sequence[object]) -> bool:
    """Whether a bot's answer is sent as markup: a knowledge answer is the sources' words and a list
    of them, plain text (nothing in it is markup)."""
    return not sources


Note = Callable[[str], Awaitable[object]]
"""Notes the platform's id of a message just posted (so that a retry edits it)."""


class _Shown:
    """The messages posted for one text, edited in place; each new one is noted at once."""

    def __init__(
        self, channel: OutputChannel, key: ConversationKey, reply_to: str | None, ids: list[str], note: Note
    ) -> None:
        self.channel, self.key, self.reply_to, self.note = channel, key, reply_to, note
        self.sent = [Sent(key, id) for id in ids]

    async def show(self, pieces: list[str], markdown: bool) -> None:
        for n, piece in enumerate(pieces):
            if n < len(self.sent):
                self.sent[n] = await self.channel.edit(self.sent[n], piece, markdown=markdown)
                continue
            sent = await self.channel.post(self.key, piece, reply_to=self.reply_to, markdown=markdown)
            self.sent.append(sent)
            # posted: its id is noted even if this send is cut off now (a retry then edits it, never reposts)
            await asyncio.shield(self.note(sent.id))


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
