"""The support side's outbox under failure (#25.5): a destination that hangs holds only its own lane,
a claim is fenced (two replicas whose rounds outlast the lease send each message once), a delivery
that keeps failing is given up (dead, counted), and a destination gone from the config is skipped."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.config import Settings
from bot.delivery import OutputChannel, Sent
from bot.notify import Notifications
from core import metrics
from core.bot import Bot
from core.escalations import EscalationStore
from core.events import Agent, AgentMessage, ConversationKey, IncomingMessage
from core.memory import Memory
from core.outbox import Outbox
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import eventually, serve_asgi

KEY = ConversationKey("test", "customer-1")
AGENT = Agent("a1", "Ana", "console")


class Customer(OutputChannel):
    """The customer's platform: records every message, each send taking `seconds`."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds, self.got = seconds, []

    async def post(self, conversation: ConversationKey, text: str, *, reply_to: str | None = None,
                   markdown: bool = False) -> Sent:  # fmt: skip
        await asyncio.sleep(self.seconds)
        self.got.append(text)
        return Sent(conversation, str(len(self.got)))

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        return sent


def hook_app(status: int = 200, hang: float = 0.0) -> Starlette:
    async def hook(_: Request) -> JSONResponse:
        await asyncio.sleep(hang)
        return JSONResponse({}, status)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


Make = Callable[..., tuple[Bot, Notifications]]


@pytest.fixture
def make(scripted: ScriptedEngine, memory: Memory, settings: Settings) -> Make:
    def build(hooks: tuple[str, ...], **notify: object) -> tuple[Bot, Notifications]:
        configured = dataclasses.replace(
            settings, notify=dataclasses.replace(settings.notify, webhook_urls=hooks, retry_seconds=0.0, **notify)
        )
        escalations = EscalationStore(memory.db)
        notifications = Notifications(memory, escalations, Outbox(memory.db), configured)
        bot = Bot(scripted, memory, configured.prompts, configured.memory, configured.escalation, notifications,
                  escalations=escalations)  # fmt: skip
        return bot, notifications

    return build


async def escalate(bot: Bot) -> int:
    reply = await bot.handle(IncomingMessage(KEY, user_id="c1", text="I want to talk to a human, now."))
    assert reply.escalated
    [case] = await bot.handoff.cases()
    return case.escalation.id


@pytest.fixture
async def hanging() -> AsyncIterator[str]:
    async with serve_asgi(hook_app(hang=4)) as url:
        yield f"{url}/hook"


async def test_a_hanging_webhook_does_not_hold_an_agents_message_to_the_customer(make: Make, hanging: str) -> None:
    bot, notifications = make((hanging,))
    customer = Customer()
    notifications.attach({}, {"test": customer})
    try:
        escalation = await escalate(bot)
        await asyncio.sleep(0.3)  # the notice to the webhook is under way, and hangs
        started = time.monotonic()
        assert await bot.handoff.say(AgentMessage(escalation, AGENT, "Hello, I am looking at your order."))
        await eventually(lambda: any("looking at your order" in t for t in customer.got), timeout=5, what="relay")
        assert time.monotonic() - started < 2
    finally:
        await notifications.aclose()


async def test_two_replicas_whose_rounds_outlast_the_lease_send_each_message_once(make: Make) -> None:
    bot, a = make(())
    _, b = make(())
    customer = Customer(seconds=0.08)
    for replica in (a, b):
        replica.attach({}, {"test": customer})
        replica.lease = 0.4  # a round of 8 sends (0.64 s) outlasts it
    try:
        escalation = await escalate(bot)
        for n in range(8):
            await bot.handoff.say(AgentMessage(escalation, AGENT, f"message {n}", event_id=f"m{n}"))
        await asyncio.sleep(0.1)

        async def later() -> None:
            await asyncio.sleep(0.45)
            await b.deliver_due()

        await asyncio.gather(a.deliver_due(), later())

        async def all_sent() -> bool:  # what a claim left for lack of time is sent by a later round
            await asyncio.gather(a.deliver_due(), b.deliver_due())
            return sum("message" in t for t in customer.got) >= 8

        await eventually(all_sent, timeout=10, what="all sent")
        await asyncio.sleep(0.5)
        await asyncio.gather(a.deliver_due(), b.deliver_due())
    finally:
        await a.aclose()
        await b.aclose()
    sent = [t for t in customer.got if "message" in t]
    assert sorted(sent) == sorted(f"Ana: message {n}" for n in range(8)), sent  # each once


async def test_a_delivery_that_keeps_failing_is_given_up_and_counted(make: Make) -> None:
    async with serve_asgi(hook_app(status=500)) as url:
        bot, notifications = make((f"{url}/hook",), max_attempts=3)
        dead = metrics.DEAD_DELIVERIES.labels("notice")._value.get()
        try:
            escalation = await escalate(bot)

            async def given_up() -> bool:
                await notifications.deliver_due()
                return (await notifications.outbox.deliveries(escalation))[0].status == "dead"

            await eventually(given_up, timeout=10, what="dead")
            for _ in range(3):  # dead rows are not claimed again
                await notifications.deliver_due()
            [notice] = await notifications.outbox.deliveries(escalation)
        finally:
            await notifications.aclose()
    assert (notice.status, notice.attempts) == ("dead", 3)
    assert metrics.DEAD_DELIVERIES.labels("notice")._value.get() == dead + 1


async def test_a_destination_removed_from_the_config_is_not_retried(make: Make) -> None:
    calls: list[int] = []

    async def hook(_: Request) -> JSONResponse:
        calls.append(1)
        return JSONResponse({}, 500)

    async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as url:
        before, old = make((f"{url}/hook",))
        escalation = await escalate(before)
        await asyncio.sleep(0.3)
        await old.aclose()
        first = len(calls)
        _, now = make(())  # the webhook is no longer configured
        try:
            for _ in range(3):
                await now.deliver_due()
        finally:
            await now.aclose()
    assert first >= 1 and len(calls) == first
    [notice] = await now.outbox.deliveries(escalation)
    assert notice.status == "pending"
