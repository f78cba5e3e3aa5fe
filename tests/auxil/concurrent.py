"""Replies of one engine to several chats at once, with the order their chunks arrived in."""

import asyncio

from core.engine import Engine
from core.events import ChatMessage


async def replies_at_once(engine: Engine, chats: list[list[ChatMessage]]) -> tuple[list[str], set[int]]:
    """(each chat's reply, the chats that had streamed text before the first reply ended)."""
    events: list[tuple[str, int]] = []

    async def collect(n: int) -> str:
        text = ""
        async for chunk in engine.reply(chats[n]):
            events.append(("chunk", n))
            text += chunk
        events.append(("done", n))
        return text

    replies = await asyncio.gather(*(collect(n) for n in range(len(chats))))
    first_done = events.index(next(e for e in events if e[0] == "done"))
    return list(replies), {n for kind, n in events[:first_done] if kind == "chunk"}
