"""The rating question after a hand-off (outcome.ask_rating): asked once, never to an upset
customer, its 1-5 answer stored and thanked without the model, a second number an ordinary message."""

from __future__ import annotations

from sqlalchemy import select

from bot.config import Settings
from core.bot import Bot
from core.events import Agent, AgentMessage, ConversationKey, IncomingMessage, Mood
from core.feedback import Feedback, parse_rating
from core.memory import Memory
from core.settings import OutcomeSettings
from tests.auxil.scripted import NEGATIVE, POSITIVE, ScriptedEngine

KEY = ConversationKey("web", "rating-1")
ANGRY = "This is awful, I want a manager now!"
AGENT = Agent("a1", "Dana", "console")


def message(text: str) -> IncomingMessage:
    return IncomingMessage(KEY, user_id="alice", text=text)


async def handed_back(memory: Memory, settings: Settings, scripted: ScriptedEngine, last: Mood, ask: bool) -> Bot:
    """A conversation escalated, answered by an agent, the customer's last word in `last`'s mood, resolved."""
    bot = Bot(scripted, memory, settings.prompts, settings.memory, settings.escalation,
              outcome=OutcomeSettings(ask_rating=ask))  # fmt: skip
    scripted.moods[ANGRY], scripted.moods["my last word"] = NEGATIVE, last
    assert (await bot.handle(message(ANGRY))).escalated
    [record] = await bot.escalations.all()
    await bot.handoff.say(AgentMessage(record.id, AGENT, "I have refunded you."))
    await bot.handle(message("my last word"))
    await bot.handoff.resolve(record.id, "console:Dana")
    await bot.handoff.resolve(record.id, "console:Dana")  # a double click: still asked once
    return bot


async def asked(bot: Bot) -> int:
    line = bot.outcome.rating_line
    return sum(m.text == line for m in await bot.memory.messages(KEY))


async def ratings(bot: Bot) -> list[tuple[str, int]]:
    async with bot.memory.db.session() as session:
        rows = (await session.scalars(select(Feedback).where(Feedback.kind == "rating"))).all()
    return [(r.author_id, r.value) for r in rows]


async def test_a_satisfied_customer_is_asked_once_and_the_answer_is_stored_not_answered(
    memory: Memory, settings: Settings, scripted: ScriptedEngine
) -> None:
    bot = await handed_back(memory, settings, scripted, POSITIVE, ask=True)
    assert await asked(bot) == 1
    chats = len(scripted.chats)
    reply = await bot.handle(message("4"))
    assert reply.text == bot.outcome.rating_thanks and len(scripted.chats) == chats  # no model reply
    assert await ratings(bot) == [("alice", 4)]
    stored = await bot.memory.messages(KEY)
    assert next(m for m in reversed(stored) if m.text == "4").mood is None  # not part of the mood trajectory

    reply = await bot.handle(message("5"))  # asked once, answered once: a later number is a message
    assert reply.text == "You said: 5" and await ratings(bot) == [("alice", 4)]
    report = await bot.insights.report("1d")
    assert (report.total.ratings, report.total.rating_mean) == (1, 4.0)


async def test_an_upset_customer_is_not_asked(memory: Memory, settings: Settings, scripted: ScriptedEngine) -> None:
    bot = await handed_back(memory, settings, scripted, NEGATIVE, ask=True)
    assert await asked(bot) == 0
    assert (await bot.handle(message("3"))).text == "You said: 3" and await ratings(bot) == []


async def test_nobody_is_asked_unless_it_is_on(memory: Memory, settings: Settings, scripted: ScriptedEngine) -> None:
    bot = await handed_back(memory, settings, scripted, POSITIVE, ask=False)
    assert await asked(bot) == 0


def test_what_reads_as_a_rating() -> None:
    assert [parse_rating(t) for t in ("4", " 5/5 ", "3 stars", "2!", "⭐⭐⭐", "1.")] == [4, 5, 3, 2, 3, 1]
    assert [parse_rating(t) for t in ("6", "0", "4 days late", "my order 4", "⭐⭐⭐⭐⭐⭐", "")] == [None] * 6
