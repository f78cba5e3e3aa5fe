"""Forget is complete (#14 C.11): no escalation left open on an empty transcript, no text left in
the SQLite files, and no reply being written meanwhile that survives it."""

import asyncio
from pathlib import Path

from sqlalchemy import select

from core.bot import Bot
from core.events import ConversationKey, IncomingMessage, Mood
from core.offers import Offer
from tests.auxil.scripted import NEGATIVE, ScriptedEngine

KEY = ConversationKey("web", "forget-1")
SECRET = "my card number is 4111-1111-1111-1111"


def message(text: str, user: str = "alice") -> IncomingMessage:
    return IncomingMessage(KEY, user_id=user, text=text)


async def test_forget_closes_the_escalation_it_empties_and_drops_its_moods(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression: forget left the escalation open with an empty transcript."""
    scripted.moods[SECRET] = NEGATIVE
    assert (await scriptbot.handle(message(SECRET))).offered == "high_negative"
    assert (await scriptbot.handle(message("yes"))).escalated  # the offer taken
    assert await scriptbot.forget("web", "alice") == 4
    [record] = await scriptbot.escalations.all(open_only=False)
    assert record.resolved_by == "forget" and record.scores == []
    assert await scriptbot.escalations.all() == []
    async with scriptbot.memory.db.reader() as session:  # the offer went with the message that drew it
        assert (await session.scalars(select(Offer))).all() == []


async def test_forget_leaves_no_text_in_the_sqlite_files(scriptbot: Bot, db_url: str) -> None:
    """Regression: the text stayed in the WAL until a checkpoint (and in free pages after it)."""
    await scriptbot.handle(message(SECRET))
    path = Path(db_url.removeprefix("sqlite:///"))
    await scriptbot.forget("web", "alice")
    files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    assert files and not any(SECRET.encode() in p.read_bytes() for p in files)


async def test_forget_while_a_reply_is_being_written_waits_for_it_and_deletes_it_too(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression: forget raced a reply (500 with the reply lost, or a bot reply that survived)."""
    events = scriptbot.stream(message("hello there, a long question"))
    assert isinstance(await anext(events), Mood)
    assert isinstance(await anext(events), str)  # the reply is being written
    forgetting = asyncio.create_task(scriptbot.forget("web", "alice"))
    await asyncio.sleep(0.2)
    assert not forgetting.done()  # it waits for the turn
    rest = [item async for item in events]
    assert not rest[-1].failed
    assert await forgetting == 2
    assert await scriptbot.memory.messages(KEY) == []


async def test_forget_keeps_other_users_turns_and_their_escalation(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    scripted.moods["this is awful"] = NEGATIVE
    await scriptbot.handle(message("hi", user="alice"))
    await scriptbot.handle(message("this is awful", user="bob"))
    assert (await scriptbot.handle(message("Yes please", user="bob"))).escalated
    assert await scriptbot.forget("web", "alice") == 2
    assert [m.author_id for m in await scriptbot.memory.messages(KEY)] == ["bob", "tonebot", "bob", "tonebot"]
    assert len(await scriptbot.escalations.all()) == 1


async def test_a_reader_holding_the_log_delays_the_scrub_which_retries_until_clean(scriptbot: Bot, db_url: str) -> None:
    """Regression (#25.4): the checkpoint's result was ignored; while a reader held a snapshot the
    text stayed in the -wal file."""
    import sqlite3

    path = Path(db_url.removeprefix("sqlite:///"))
    await scriptbot.handle(message(SECRET))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchall()  # a snapshot that pins the log
    try:
        await scriptbot.forget("web", "alice")
        assert scriptbot._scrubbing is not None  # not clean yet: retrying
    finally:
        reader.execute("COMMIT")
        reader.close()
    for _ in range(50):
        if scriptbot._scrubbing is None:
            break
        await asyncio.sleep(0.1)
    files = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    assert scriptbot._scrubbing is None and not any(SECRET.encode() in p.read_bytes() for p in files)
