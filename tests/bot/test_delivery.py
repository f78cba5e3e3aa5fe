"""Delivery, the one policy every platform shares: previews of a streaming reply at a throttled
pace, splitting at the platform's limit, nothing sent for duplicates or paused chats."""

from collections.abc import AsyncIterator

import pytest

from bot.delivery import deliver, previews, split
from core.bot import Event
from core.events import ConversationKey, Mood, Reply
from tests.auxil.collecting import CollectingChannel

KEY = ConversationKey("test", "c1", "t1")


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


async def stream(*items: Event) -> AsyncIterator[Event]:
    for item in items:
        yield item


async def test_a_streamed_reply_grows_one_message_then_gets_its_final_text() -> None:
    channel = CollectingChannel(limit=100, interval=0)
    mood = Mood("neutral", {"negative": 0.1, "neutral": 0.8, "positive": 0.1})
    reply = await deliver(channel, KEY, stream(mood, "Hel", "lo", Reply("Hello", mood)), reply_to="m-7")
    assert reply.text == "Hello"
    [message] = channel.messages
    assert message.text == "Hello" and message.reply_to == "m-7" and message.conversation == KEY
    assert message.versions == ["Hel", "Hello", "Hello"] and message.markdown  # the final text in Markdown
    assert channel.typing_seen == [KEY]


async def test_a_long_reply_is_split_at_the_limit() -> None:
    channel = CollectingChannel(limit=30, interval=3600)
    text = "First sentence is here. Second sentence follows. Third one ends it."
    await deliver(channel, KEY, stream(text, Reply(text, None)))
    assert [m.text for m in channel.messages] == split(text, 30) and len(channel.messages) == 3
    assert all(len(m.text) <= 30 for m in channel.messages)


@pytest.mark.parametrize("flags", [{"duplicate": True}, {"paused": True}])
async def test_duplicates_and_paused_chats_send_nothing(flags: dict[str, bool]) -> None:
    channel = CollectingChannel()
    reply = await deliver(channel, KEY, stream(Reply("", None, **flags)))
    assert channel.messages == [] and (reply.duplicate or reply.paused)
