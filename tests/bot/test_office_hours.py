"""Office hours with a frozen clock: out of every desk's hours an escalation pages no one, the
customer hears when people are back and what to have ready, the bot keeps answering (even in pause
mode), and each held page goes once at opening time with two replicas delivering at once."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import FOLLOWED
from bot.config import Secrets, Settings
from bot.notify import Notifications
from core.bot import Bot
from core.errors import ConfigError
from core.escalations import EscalationStore
from core.events import ConversationKey, IncomingMessage
from core.handoff import Handoff
from core.hours import Hours
from core.memory import Memory
from core.outbox import Outbox
from core.settings import HoursSettings
from tests.auxil.clock import Clock, freeze
from tests.auxil.receiver import Receiver
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import serve_asgi

SATURDAY = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
MONDAY_OPENING = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
HOURS = HoursSettings(
    weekly="mon-fri 09:00-17:00", timezone="Europe/Berlin", ask_for=("your order number", "your email")
)
ASK = "I want to speak to a human agent now!"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return freeze(monkeypatch, SATURDAY)


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    async with serve_asgi(receiver.app()) as url:
        yield receiver, f"{url}/hook"


def replica(memory: Memory, settings: Settings, url: str, **policy: object) -> tuple[Bot, Notifications]:
    configured = dataclasses.replace(
        settings,
        escalation=dataclasses.replace(settings.escalation, **policy),
        notify=dataclasses.replace(settings.notify, webhook_urls=(url,), retry_seconds=0.0),
        handoff=dataclasses.replace(settings.handoff, hours=HOURS),
        secrets=Secrets(escalation_webhook_secret="s3cret"),
    )
    escalations = EscalationStore(memory.db)
    notifications = Notifications(memory, escalations, Outbox(memory.db), configured)
    notifications.attach({}, FOLLOWED)
    handoff = Handoff(memory, escalations, configured.handoff, notifications.destinations, notifications.changed)
    bot = Bot(ScriptedEngine(), memory, configured.prompts, configured.memory, configured.escalation, notifications,
              escalations=escalations, handoff=handoff)  # fmt: skip
    return bot, notifications


async def test_out_of_hours_pages_wait_for_opening_and_go_once_across_two_replicas(
    memory: Memory, settings: Settings, hook: tuple[Receiver, str], clock: Clock
) -> None:
    receiver, url = hook
    (bot, one), (_, two) = replica(memory, settings, url, mode="pause"), replica(memory, settings, url, mode="pause")
    key = ConversationKey("web", "weekend-1")
    try:
        reply = await bot.handle(IncomingMessage(key, user_id="cora", text=ASK))
        assert reply.escalated and not reply.paused
        assert "back on Monday at 09:00 (Europe/Berlin)" in reply.text
        assert reply.text.endswith("please share your order number and your email.")
        later = await bot.handle(IncomingMessage(key, user_id="cora", text="My order is 4471, cora@example.com"))
        assert later.text and not later.paused  # nobody is there: the bot keeps helping, even in pause mode
        for hour in range(0, 44, 4):  # all weekend, both replicas deliver what is due: nothing
            clock.now = SATURDAY + timedelta(hours=hour)
            await asyncio.gather(one.deliver_due(), two.deliver_due())
            assert await bot.handoff.check_idle() == 0  # nobody is late out of hours: no "sorry for the wait"
        await asyncio.sleep(0.2)
        assert receiver.received == []
        clock.now = MONDAY_OPENING + timedelta(seconds=1)
        await asyncio.gather(one.deliver_due(), two.deliver_due())
        notices = [b for b in receiver.bodies() if "transcript" in b]
        assert len(notices) == 1 and notices[0]["reason"] == "asked_for_human"
        relayed = [b for b in receiver.bodies() if b.get("type") == "customer_message"]
        assert [b["text"] for b in relayed] == ["My order is 4471, cora@example.com"]  # what they left for the agent
        await asyncio.gather(one.deliver_due(), two.deliver_due())
        assert len([b for b in receiver.bodies() if "transcript" in b]) == 1  # once
        # open now: the next conversation's page goes at once, and pause mode pauses again
        paused = await bot.handle(IncomingMessage(ConversationKey("web", "monday-1"), user_id="dan", text=ASK))
        assert paused.escalated and paused.text == settings.escalation.pause_line
    finally:
        await one.aclose()
        await two.aclose()


def test_urgent_reasons_page_at_any_hour_and_hours_are_checked_at_start() -> None:
    hours = Hours(dataclasses.replace(HOURS, urgent_reasons=("asked_for_human",)))
    assert hours.held(["webhook:x"], SATURDAY, "asked_for_human") == {}
    assert hours.held(["webhook:x"], SATURDAY, "high_negative") == {"webhook:x": MONDAY_OPENING}
    assert hours.opens("webhook:x", MONDAY_OPENING) is None  # open at 09:00 sharp
    own = Hours(dataclasses.replace(HOURS, desks=(("slack:C1", "mon-sun 00:00-24:00"),), holidays=("2026-12-07",)))
    assert own.opens("slack:C1", SATURDAY) is None  # that desk has its own hours
    assert own.opens("webhook:x", SATURDAY) == MONDAY_OPENING + timedelta(days=1)  # Monday is a holiday
    for bad in ({"weekly": "weekdays 9-5"}, {"weekly": "mon 17:00-09:00"}, {"timezone": "Mars/Olympus"},
                {"holidays": ("25.12.2026",)}):  # fmt: skip
        with pytest.raises(ConfigError):
            Hours(dataclasses.replace(HOURS, **bad))
