"""Delivery, the one policy every platform shares: previews of a streaming reply at a throttled
pace, splitting at the platform's limit, nothing sent for duplicates or paused chats, and the
outbox's reply row noting what was posted."""

from collections.abc import AsyncIterator
from datetime import timedelta

from bot.delivery import deliver, previews, split
from core.bot import Bot, Event
from core.events import ConversationKey, IncomingMessage, Reply
from core.outbox import Outbox
from tests.auxil.collecting import CollectingChannel
from tests.auxil.scripted import ScriptedEngine

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


def message(text: str, event_id: str = "e-1", message_id: str = "m-7") -> IncomingMessage:
    return IncomingMessage(KEY, user_id="u1", text=text, event_id=event_id, message_id=message_id)


async def test_a_streamed_reply_grows_one_message_then_gets_its_final_text(scriptbot: Bot) -> None:
    channel = CollectingChannel(limit=100, interval=0)
    reply = await deliver(channel, scriptbot, message("Hello"), reply_to="m-7")
    assert reply is not None and reply.text == "You said: Hello"
    [posted] = channel.messages
    assert posted.text == "You said: Hello" and posted.reply_to == "m-7" and posted.conversation == KEY
    assert posted.versions[0] == "You" and len(posted.versions) > 2 and posted.markdown  # final in Markdown
    assert channel.typing_seen == [KEY]


async def test_a_long_reply_is_split_at_the_limit(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    channel = CollectingChannel(limit=30, interval=3600)
    text = "First sentence is here. Second sentence follows. Third one ends it."
    scripted.answer = lambda _: text
    await deliver(channel, scriptbot, message("tell me"))
    assert [m.text for m in channel.messages] == split(text, 30) and len(channel.messages) == 3
    assert all(len(m.text) <= 30 for m in channel.messages)


async def test_duplicates_and_paused_chats_send_nothing(scriptbot: Bot) -> None:
    channel = CollectingChannel()
    await deliver(channel, scriptbot, message("Hello"))
    again = await deliver(channel, scriptbot, message("Hello"))
    assert again is not None and again.duplicate and len(channel.messages) == 1


async def test_every_post_is_noted_in_the_outbox_and_the_reply_closed(scriptbot: Bot) -> None:
    ledger, channel = scriptbot.ledger, CollectingChannel(limit=30, interval=3600)
    msg = message("a question long enough to need a few pieces of answer")
    await deliver(channel, scriptbot, msg)
    assert await ledger.sent_ids(KEY, msg.event_id) == list(channel.posted)  # every piece, in order
    owed, _ = await ledger.claim_owed(timedelta(hours=1), 3)
    assert (
        owed == [] and await Outbox(scriptbot.memory.db).claim_due(["customer"], platforms=["test"]) == []
    )  # delivered: nothing owed


async def test_an_answer_after_a_dead_attempt_edits_what_that_attempt_posted(scriptbot: Bot) -> None:
    """A preview posted by an attempt that died is edited into the answer, not left beside a second one."""
    ledger, channel = scriptbot.ledger, CollectingChannel()
    msg = message("Hello")
    assert await ledger.store(msg)
    dead = await channel.post(KEY, "You sa", reply_to="m-7")
    await ledger.posted(KEY, msg.event_id, dead.id)
    await deliver(channel, scriptbot, msg, reply_to="m-7")
    [posted] = channel.messages
    assert posted.text == "You said: Hello"


async def test_a_retried_text_edits_what_was_posted_and_notes_each_new_post() -> None:
    channel, noted = CollectingChannel(limit=30), []
    text = "First sentence is here. Second sentence follows. Third one ends it."
    first = await channel.post(KEY, "First sentence is here.")

    async def note(id: str) -> None:
        noted.append(id)

    ids = await channel.show(KEY, text, [first.id], note, reply_to="m-7")
    assert [m.text for m in channel.messages] == split(text, 30) and ids == list(channel.posted)
    assert channel.posted[first.id].versions == ["First sentence is here."] * 2  # edited, not posted again
    assert noted == ids[1:]  # each new post noted at once
