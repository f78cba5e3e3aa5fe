"""Splitting long replies, and previews of a streaming reply at a throttled pace."""

from collections.abc import AsyncIterator

from bot.adapters.streaming import previews, split
from core.bot import Event
from core.events import Reply


def test_split_respects_the_limit_and_the_strongest_boundary() -> None:
    paragraph = "A sentence that goes on. " * 40
    text = "\n\n".join([paragraph.strip()] * 6)
    pieces = split(text, 4096)
    assert len(pieces) > 1 and all(len(p) <= 4096 for p in pieces)
    assert all(p.endswith(".") for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert split("x" * 5000, 4096) == ["x" * 4096, "x" * 904]
    assert split("short", 3500) == ["short"] and split("   ", 10) == []


async def test_previews_grow_and_end_with_the_reply() -> None:
    final = Reply("Hello world", None)

    async def events() -> AsyncIterator[Event]:
        for chunk in ["Hel", "lo", " world"]:
            yield chunk
        yield final

    every_chunk = [item async for item in previews(events(), 0)]
    assert every_chunk == ["Hel", "Hello", "Hello world", final]
    throttled = [item async for item in previews(events(), 3600)]
    assert throttled == ["Hel", final]
