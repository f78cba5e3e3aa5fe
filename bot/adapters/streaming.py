"""Shared by the chat adapters: a reply's growing text at a throttled pace, and long text in pieces."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from core.bot import Event
from core.events import Reply

BOUNDARIES = ("\n\n", "\n", ". ", "! ", "? ", "。", " ")  # strongest first


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
