"""The honest wait: the line that escalates tells the median first human reply measured at this weekday
and hour (falling back to this hour, then any), or the configured default, or nothing."""

import dataclasses
from datetime import timedelta

from sqlalchemy import update

from core.bot import Bot
from core.escalations import Escalation
from core.events import ConversationKey, IncomingMessage, utcnow
from core.waits import spoken

ASK = "Can I talk to a human please?"


async def escalate(bot: Bot, chat: str) -> str:
    reply = await bot.handle(IncomingMessage(ConversationKey("web", chat), user_id=chat, text=ASK))
    assert reply.escalated
    return reply.text


async def history(bot: Bot, minutes: list[float], weeks_ago: bool = True) -> None:
    """Past escalations, each opened a week (or a day) apart at this hour, answered after `minutes`."""
    now = utcnow()
    for n, wait in enumerate(minutes, 1):
        await escalate(bot, f"past-{n}-{weeks_ago}")
        opened = now - (timedelta(weeks=n) if weeks_ago else timedelta(days=n))
        async with bot.memory.db.session() as session, session.begin():
            await session.execute(update(Escalation).where(Escalation.resolved_at.is_(None))
                                  .values(opened_at=opened, first_reply_at=opened + timedelta(minutes=wait),
                                          resolved_at=opened + timedelta(hours=1)))  # fmt: skip


async def test_the_escalating_line_tells_the_median_wait_at_this_hour(scriptbot: Bot) -> None:
    assert scriptbot.policy is not None
    assert (await escalate(scriptbot, "first")).endswith(scriptbot.policy.notify_line)  # no history: no promise
    async with scriptbot.memory.db.session() as session, session.begin():
        await session.execute(update(Escalation).values(resolved_at=utcnow()))
    await history(scriptbot, [12.0, 14.0, 40.0, 9.0, 130.0])  # same weekday and hour: median 14
    text = await escalate(scriptbot, "now")
    wait = "A person usually answers within about 15 minutes at this time."
    assert text.endswith(f"{scriptbot.policy.notify_line} {wait}")


async def test_too_few_samples_fall_back_to_the_default(scriptbot: Bot) -> None:
    scriptbot.handoff.settings = dataclasses.replace(scriptbot.handoff.settings, default_wait_minutes=45)
    await history(scriptbot, [3.0, 4.0])  # two are no median
    assert (await escalate(scriptbot, "now")).endswith("within about 45 minutes at this time.")


def test_waits_are_spoken_rounded_up() -> None:
    assert [spoken(m) for m in (1, 5, 5.5, 14, 59, 61, 95, 180)] == [
        "5 minutes", "5 minutes", "about 10 minutes", "about 15 minutes", "about 1 hour", "about 1.5 hours",
        "about 2 hours", "about 3 hours",
    ]  # fmt: skip
