"""The acid test of the platform contract (#27): Chatterbox, a platform that exists only in
tests/auxil/chatterbox/ (its settings, secrets, adapter, output channel, desk and a fake server), is
registered through the registry alone and turned on by settings, as a user would. Then the same
journey as Telegram's and Slack's hand-off suites, on the real model: a customer chats and asks for a
person, the notice reaches the support room with its buttons, an agent takes over, words go both
ways, every event is delivered twice and acted on once, Resolve hands back to the bot."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot import app
from bot.__main__ import check_config
from bot.adapters.web import create_app
from bot.config import Settings, load_settings
from bot.notify import Notifications
from bot.registry import PLATFORMS
from core.bot import Bot
from core.escalations import EscalationStore
from core.events import ConversationKey
from core.handoff import Handoff
from core.memory import Memory
from core.outbox import Outbox
from tests.auxil import chatterbox
from tests.auxil.chatterbox.server import FakeChatterbox
from tests.auxil.servers import eventually, serve_asgi
from tests.auxil.spy import SpyEngine

TOKEN, SUPPORT, ALICE, SHARD = "cb-token-0123456789abcdef", "support", "room-alice", "eu-3"
ASK = "Can I talk to a real person please? My parcel is two weeks late."


@dataclass
class World:
    bot: Bot
    fake: FakeChatterbox
    client: httpx.AsyncClient
    spy: SpyEngine
    settings: Settings

    async def push(self, event: dict[str, Any]) -> httpx.Response:
        response = await self.fake.push(self.client, event)
        assert response.status_code == 200, response.text
        return response

    def to_alice(self) -> list[str]:
        return [m["text"] for m in self.fake.in_room(ALICE)]


@asynccontextmanager
async def world(spy: SpyEngine, memory: Memory, settings: Settings) -> AsyncIterator[World]:
    fake = FakeChatterbox(TOKEN, webhook="/chatterbox/events", shards={ALICE: SHARD})
    async with serve_asgi(fake.app()) as url:
        env = {"TONEBOT_CHATTERBOX__ENABLED": "true", "TONEBOT_CHATTERBOX__API_URL": url,
               "TONEBOT_CHATTERBOX__SUPPORT_ROOM": SUPPORT, "TONEBOT_CHATTERBOX__RATE_LIMIT_PER_MINUTE": "0",
               "TONEBOT_NOTIFY__RETRY_SECONDS": "0", "CHATTERBOX_TOKEN": TOKEN}  # fmt: skip
        loaded = load_settings(environ=env)
        configured = dataclasses.replace(settings, platforms=loaded.platforms, secrets=loaded.secrets,
                                         notify=loaded.notify)  # fmt: skip
        escalations = EscalationStore(memory.db)
        notifications = Notifications(memory, escalations, Outbox(memory.db), configured)
        bot = Bot(spy, memory, configured.prompts, configured.memory, configured.escalation, notifications,
                  escalations=escalations, handoff=Handoff(memory, escalations, configured.handoff,
                  destinations=notifications.destinations, changed=notifications.changed))  # fmt: skip
        adapters = app.open_adapters(bot, configured)  # what `serve` does, through the registry
        [adapter] = adapters.values()
        async with adapter:
            notifications.attach(
                {n: a.desk for n, a in adapters.items() if a.desk}, {n: a.channel for n, a in adapters.items()}
            )
            transport = httpx.ASGITransport(app=create_app(bot, adapter.routes()))
            async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
                yield World(bot, fake, client, spy, configured)


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PLATFORMS, "chatterbox", chatterbox.PLATFORM)  # the registry line, and nothing else


def said(
    eid: str, text: str, room: str = ALICE, user: str = "u-alice", name: str = "Alice Liddell", thread: str = ""
) -> dict[str, Any]:
    shard = SHARD if room == ALICE else ""  # the customer's room is on a shard: sends there must name it
    return {"id": eid, "room": room, "user": user, "name": name, "text": text, "thread": thread, "shard": shard}


def click(eid: str, action: str, escalation: int) -> dict[str, Any]:
    return {"id": eid, "room": SUPPORT, "user": "u-dana", "name": "Dana", "action": action, "escalation": escalation}


async def test_a_registered_third_platform_runs_the_whole_hand_off(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    async with world(spy, memory, settings) as w:
        assert "platforms:  chatterbox" in check_config(w.settings)  # config check goes through the registry
        for _ in range(2):  # the service delivers the customer's message twice: stored and answered once
            await w.push(said("e1", ASK))
        notice = (await eventually(lambda: w.fake.in_room(SUPPORT, thread=None), what="the notice"))[0]
        [escalation] = await w.bot.escalations.all()
        assert notice["buttons"] == ["take", "resolve"] and f"Escalation #{escalation.id}" in notice["text"]
        await eventually(lambda: len(w.to_alice()) == 1, what="the bot's answer that it asked a person")
        assert escalation.key == ConversationKey("chatterbox", ALICE)

        for eid in ("b1", "b2"):  # a double click takes it once
            response = await w.push(click(eid, "take", escalation.id))
            assert response.json()["text"].startswith("You have it")
        joined = await eventually(lambda: [t for t in w.to_alice() if "has joined" in t], what="the joined line")
        assert joined == ["Dana from our support team has joined the conversation and will answer you here."]
        await eventually(lambda: w.fake.messages[notice["id"]]["buttons"] == ["resolve"], what="the notice taken")

        words = "Hi, I am Dana from support. Your parcel arrives Friday."
        for _ in range(2):  # redelivered: relayed once
            await w.push(said("a1", words, room=SUPPORT, user="u-dana", name="Dana", thread=notice["id"]))
        await eventually(lambda: f"Dana: {words}" in w.to_alice(), what="the agent's words to the customer")

        chats = len(w.spy.chats)
        await w.push(said("e2", "Great, thank you!"))
        relayed = await eventually(
            lambda: [m for m in w.fake.in_room(SUPPORT, notice["id"]) if "Great, thank you!" in m["text"]],
            what="the customer's answer in the agents' thread",
        )
        assert relayed[0]["text"].startswith("💬 Alice Liddell: Great, thank you!")
        assert len(w.spy.chats) == chats  # the bot is silent while a person has it
        assert w.to_alice().count(f"Dana: {words}") == 1

        await w.push(click("b3", "resolve", escalation.id))
        await eventually(lambda: w.fake.messages[notice["id"]]["buttons"] == [], what="the notice resolved")
        await w.push(said("e3", "When exactly will it arrive?"))
        await eventually(lambda: len(w.spy.chats) > chats, what="the bot answering again")
    assert ("assistant", words) in [(m.role, m.content) for m in w.spy.chats[-1]]
    stored = await memory.messages(ConversationKey("chatterbox", ALICE))
    assert [m.role for m in stored].count("agent") == 1 and [m.text for m in stored].count(ASK) == 1


def test_a_platform_is_configured_by_its_own_section_and_secrets() -> None:
    with pytest.raises(Exception, match="CHATTERBOX_TOKEN is not set"):
        check_config(load_settings(environ={"TONEBOT_CHATTERBOX__ENABLED": "true"}))
    with pytest.raises(Exception, match=r"chatterbox\.support_room is 'x' but chatterbox\.enabled is false"):
        load_settings(environ={"TONEBOT_CHATTERBOX__SUPPORT_ROOM": "x"})
    shown = load_settings(environ={"TONEBOT_CHATTERBOX__ENABLED": "1", "CHATTERBOX_TOKEN": TOKEN})
    assert shown.credentials() == [TOKEN] and "CHATTERBOX_TOKEN" in shown.secrets.enabled()
