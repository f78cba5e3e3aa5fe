"""The event ledger (#14 A.1, A.2, C.9): every accepted event is answered once, an event never
answered (the answerer died, the client left, the attempt failed) is taken over by its redelivery,
and an event id never reaches another conversation's answer."""

import contextlib
from datetime import timedelta

import pytest

from core import ledger as ledger_module
from core.bot import APOLOGY, Bot
from core.events import ConversationKey, IncomingMessage, Mood
from core.ledger import Accepted, Ledger, Seen
from core.memory import Memory
from tests.auxil.scripted import ScriptedEngine


def message(chat: str, text: str, event_id: str) -> IncomingMessage:
    return IncomingMessage(ConversationKey("web", chat), user_id="u", text=text, event_id=event_id)


async def test_an_event_id_is_scoped_to_its_conversation(memory: Memory, scriptbot: Bot) -> None:
    """Regression: `{"conversation_id": "c-other", "event_id": "c-victim-1"}` returned the victim's reply."""
    victim = await scriptbot.handle(message("c-victim", "my card number is secret", "c-victim-1"))
    other = await scriptbot.handle(message("c-other", "hello", "c-victim-1"))
    assert not other.duplicate and other.text == "You said: hello"
    assert "secret" not in other.text and victim.text != other.text
    again = await scriptbot.handle(message("c-victim", "my card number is secret", "c-victim-1"))
    assert again.duplicate and again.text == victim.text


async def test_a_stream_the_client_left_is_answered_by_the_retry(memory: Memory, scriptbot: Bot) -> None:
    """Regression: closing `/v1/chat/stream` after the first token left the event `accepted` forever,
    and every retry of its id got `{"reply": "", "duplicate": true}`."""
    msg = message("left", "Where is my parcel?", "left-1")
    async with contextlib.aclosing(scriptbot.stream(msg)) as events:
        assert isinstance(await anext(events), Mood)
        assert isinstance(await anext(events), str)  # the first token; then the client goes away
    retried = await scriptbot.handle(msg)
    assert not retried.duplicate and retried.text == "You said: Where is my parcel?"
    stored = await memory.messages(msg.key)
    assert [(m.role, m.text) for m in stored] == [("user", msg.text), ("assistant", retried.text)]
    assert (await scriptbot.handle(msg)).duplicate  # and now it is answered, once


@pytest.mark.parametrize("how", ["restarted", "lease expired"])
async def test_an_answerer_that_died_is_taken_over_with_the_stored_turn(
    memory: Memory, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "lease expired":  # e.g. a PostgreSQL replica that was killed: its lease runs out
        monkeypatch.setattr(ledger_module, "LEASE", timedelta(seconds=-1))
    first = await ledger.accept(message("died", "the stored words", "died-1"))
    assert isinstance(first, Accepted) and not first.retry
    # killed here, before a reply was recorded; the platform redelivers (whatever text it carries)
    if how == "restarted":  # a new process on the SQLite file
        monkeypatch.setattr(ledger_module, "OWNER", "host:999999")
    again = await ledger.accept(message("died", "a redelivery's words", "died-1"))
    assert isinstance(again, Accepted) and again.retry
    assert (again.message_id, again.text) == (first.message_id, "the stored words")
    await ledger.record_reply(again, "answered at last", failed=False)
    seen = await ledger.accept(message("died", "the stored words", "died-1"))
    assert isinstance(seen, Seen) and seen.reply == "answered at last"
    stored = await memory.messages(ConversationKey("web", "died"))
    assert [m.text for m in stored] == ["the stored words", "answered at last"]


async def test_an_event_its_live_owner_is_answering_is_acknowledged_without_a_second_answer(
    memory: Memory, ledger: Ledger
) -> None:
    first = await ledger.accept(message("live", "hello", "live-1"))
    again = await ledger.accept(message("live", "hello", "live-1"))
    assert isinstance(first, Accepted) and isinstance(again, Seen) and again.reply == ""


async def test_a_failed_attempt_is_answered_by_the_retry_and_its_apology_replaced(
    memory: Memory, scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    def broken(text: str) -> str:
        raise RuntimeError("the model fell over")

    msg = message("failed", "hello", "failed-1")
    scripted.answer = broken
    assert (await scriptbot.handle(msg)).text == APOLOGY
    scripted.answer = lambda text: f"You said: {text}"
    retried = await scriptbot.handle(msg)
    assert not retried.failed and retried.text == "You said: hello"
    assert [m.text for m in await memory.messages(msg.key)] == ["hello", "You said: hello"]
