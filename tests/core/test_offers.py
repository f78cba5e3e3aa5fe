"""Offering a person through the Bot and its storage: once per conversation, the yes escalates with the
offer's reason and is answered by the escalation's line alone, a no is remembered, a loop is found
in the stored turns, a retried turn offers once, and a knowledge-base "no answer" is an offer too."""

from sqlalchemy import func, select

from core.bot import Bot
from core.events import ConversationKey, IncomingMessage, Reply
from core.offers import Offer
from tests.auxil.scripted import NEGATIVE, ScriptedEngine

KEY = ConversationKey("web", "offers-1")


async def say(bot: Bot, text: str, event_id: str = "") -> Reply:
    ids = {"event_id": event_id} if event_id else {}
    return await bot.handle(IncomingMessage(KEY, user_id="cora", text=text, **ids))


async def answers(bot: Bot) -> list[str | None]:
    async with bot.memory.db.reader() as session:
        return list((await session.scalars(select(Offer.answer).order_by(Offer.id))).all())


async def test_a_bad_mood_offers_once_and_the_yes_escalates_for_its_reason(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    scripted.moods["This is awful!"] = NEGATIVE
    offered = await say(scriptbot, "This is awful!")
    assert offered.offered == "high_negative" and not offered.escalated
    assert offered.text.endswith(scriptbot.policy.offer_line)
    chats = len(scripted.chats)
    taken = await say(scriptbot, "yes please")
    assert taken.escalated and taken.text == scriptbot.policy.notify_line  # no model reply to a yes
    assert len(scripted.chats) == chats
    [case] = await scriptbot.escalations.all()
    assert case.reason == "high_negative" and await answers(scriptbot) == ["yes"]


async def test_a_no_is_remembered_and_asking_again_escalates(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    scripted.moods["This is awful!"] = scripted.moods["Still awful!"] = NEGATIVE
    assert (await say(scriptbot, "agent")).offered == "vague_request"
    declined = await say(scriptbot, "no thanks, where is my parcel?")
    assert not declined.escalated and not declined.offered
    again = await say(scriptbot, "This is awful!")  # declined: no second offer
    assert not again.offered and not again.escalated
    assert await answers(scriptbot) == ["no"]
    assert (await say(scriptbot, "agent")).escalated  # a bare request after a no: they mean it
    [case] = await scriptbot.escalations.all()
    assert case.reason == "asked_for_human"


async def test_the_third_time_the_same_question_offers_a_person(scriptbot: Bot) -> None:
    for text in ("How do I change my plan?", "I mean, how do I change my subscription plan?"):
        assert not (await say(scriptbot, text)).offered
    assert (await say(scriptbot, "How do I change my plan?")).offered == "loop"
    assert (await say(scriptbot, "ok")).escalated  # "ok" takes it
    [case] = await scriptbot.escalations.all()
    assert case.reason == "loop"


async def test_a_retried_turn_offers_once(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    scripted.moods["This is awful!"] = NEGATIVE
    first = await say(scriptbot, "This is awful!", event_id="e-1")
    again = await say(scriptbot, "This is awful!", event_id="e-1")  # a redelivery: the stored answer
    assert first.offered and again.duplicate and again.text == first.text
    async with scriptbot.memory.db.reader() as session:
        assert await session.scalar(select(func.count()).select_from(Offer)) == 1


async def test_with_offers_off_a_bad_mood_escalates_at_once(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    import dataclasses

    assert scriptbot.policy is not None
    scriptbot.policy = dataclasses.replace(scriptbot.policy, offer_first=False)
    scripted.moods["This is awful!"] = NEGATIVE
    reply = await say(scriptbot, "This is awful!")
    assert reply.escalated and not reply.offered
