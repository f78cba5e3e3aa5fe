"""The live hand-off end to end (#15), on loopback fakes of both platforms and the real model: the
real PTB Application and Bolt app, one Bot, the notifications delivering the outbox.

A Telegram customer escalates -> a Slack agent takes over with the button and answers in the thread
-> the Telegram chat receives it; the customer's answer appears in the thread with its mood while
the bot is silent; Resolve -> the bot answers again with the agent's words in its context. The same
with a Slack customer and a Telegram support group (forum topics, or replies to the notice).
Redelivered events and double clicks relay once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.adapters.slack import SlackSettings
from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.telegram import TelegramSettings
from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.web import create_app
from bot.config import Secrets, Settings
from bot.desk import NOTE_KEPT
from bot.notify import Notifications
from core.bot import Bot
from core.escalations import EscalationStore
from core.events import ConversationKey
from core.handoff import Handoff
from core.memory import Memory
from core.outbox import Outbox
from tests.auxil.fake_slack import FakeSlackAPI
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.receiver import Receiver
from tests.auxil.servers import eventually, serve_asgi
from tests.auxil.spy import SpyEngine
from tests.bot.adapters.test_slack_e2e import signed

DATA = Path(__file__).resolve().parents[1] / "data"
ME = json.loads((DATA / "telegram" / "me.json").read_text())
SLACK_SUPPORT, TELEGRAM_SUPPORT, ALICE, SLACK_DM = "C0ONCALL01", -1005555555555, 111, "D0ALICEDM1"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ASK = "Can I talk to a real person please? My parcel is two weeks late."


@dataclass
class World:
    bot: Bot
    telegram: FakeBotAPI
    slack: FakeSlackAPI
    client: httpx.AsyncClient  # the web app with Slack's events route
    spy: SpyEngine
    slack_adapter: SlackAdapter

    async def slack_post(self, body: dict[str, Any], form: bool = False, **headers: str) -> httpx.Response:
        if form:
            raw = urllib.parse.urlencode({"payload": json.dumps(body)}).encode()
            kind = "application/x-www-form-urlencoded"
        else:
            raw, kind = json.dumps(body).encode(), "application/json"
        response = await self.client.post(
            "/slack/events", content=raw, headers={"content-type": kind, **signed(raw, SECRET), **headers}
        )
        assert response.status_code == 200, response.text
        return response

    def in_support(self) -> list[dict[str, Any]]:
        return [m for m in self.slack.messages.values() if m["channel"] == SLACK_SUPPORT]

    def to_alice(self) -> list[str]:
        return [m["text"] for m in self.telegram.sent_to(ALICE)]


@asynccontextmanager
async def world(
    spy: SpyEngine, memory: Memory, settings: Settings, *, slack_support: str = "", telegram_support: str = "",
    forum: bool = True, slack_agents: tuple[str, ...] = (),
) -> AsyncIterator[World]:  # fmt: skip
    telegram, slack = FakeBotAPI(me=ME), FakeSlackAPI(names={"U0AGENT001": "Dana"})
    if forum:
        telegram.forums.add(TELEGRAM_SUPPORT)
    async with serve_asgi(telegram.app()) as telegram_url, serve_asgi(slack.app()) as slack_url:
        configured = dataclasses.replace(
            settings,
            notify=dataclasses.replace(settings.notify, retry_seconds=0.0),
            handoff=dataclasses.replace(settings.handoff, canned=(("eta", CANNED_ETA),)),
            platforms={
                "telegram": TelegramSettings(enabled=True, base_url=f"{telegram_url}/bot", edit_interval=0.2,
                                             rate_limit_per_minute=0, support_chat_id=telegram_support),
                "slack": SlackSettings(enabled=True, mode="http", api_base_url=f"{slack_url}/api/", edit_interval=0.2,
                                       rate_limit_per_minute=0, agent_user_ids=slack_agents,
                                       support_channel=slack_support),
            },
            secrets=Secrets(platforms={"TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN", "SLACK_BOT_TOKEN": "xoxb-test",
                                       "SLACK_SIGNING_SECRET": SECRET}),
        )  # fmt: skip
        escalations = EscalationStore(memory.db)
        notifications = Notifications(memory, escalations, Outbox(memory.db), configured)
        bot = Bot(spy, memory, configured.prompts, configured.memory, configured.escalation, notifications,
                  escalations=escalations, handoff=Handoff(memory, escalations, configured.handoff,
                  destinations=notifications.destinations, changed=notifications.changed))  # fmt: skip
        secrets = configured.secrets.platforms
        tg = TelegramAdapter(bot, configured.platforms["telegram"], secrets)
        sl = SlackAdapter(bot, configured.platforms["slack"], secrets)
        async with tg, sl:
            desks = {name: desk for name, desk in (("telegram", tg.desk), ("slack", sl.desk)) if desk}
            notifications.attach(desks, {"telegram": tg.channel, "slack": sl.channel})
            transport = httpx.ASGITransport(app=create_app(bot, sl.routes()))
            async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
                yield World(bot, telegram, slack, client, spy, sl)
        await notifications.aclose()


def private(text: str, message_id: int) -> dict[str, Any]:
    update = json.loads((DATA / "telegram" / "private.json").read_text())
    update["update_id"] = 800_000 + message_id
    update["message"].update(message_id=message_id, text=text)
    return update


def slack_dm(text: str, n: int) -> dict[str, Any]:
    body = json.loads((DATA / "slack" / "dm.json").read_text())
    ts = f"1763769800.{n:06d}"
    body["event"].update(text=text, ts=ts, event_ts=ts)
    body["event_id"] = f"Ev0DM{n:06d}"
    return body


def button(action: str, escalation_id: int, notice_ts: str) -> dict[str, Any]:
    body = json.loads((DATA / "slack" / "block_actions.json").read_text())
    body["actions"][0].update(action_id=action, value=str(escalation_id))
    body["container"]["message_ts"] = body["message"]["ts"] = notice_ts
    return body


def callback(data: str, notice: dict[str, Any], update_id: int) -> dict[str, Any]:
    update = json.loads((DATA / "telegram" / "callback_query.json").read_text())
    update["update_id"] = update_id
    update["callback_query"].update(data=data, id=f"cq{update_id}")
    update["callback_query"]["message"].update(message_id=notice["message_id"])
    if "message_thread_id" not in notice:
        update["callback_query"]["message"].pop("message_thread_id")
        update["callback_query"]["message"]["is_topic_message"] = False
    return update


CANNED_ETA = "Parcels leave our warehouse within 24 hours; tracking follows by email."


def buttons_of(notice: dict[str, Any]) -> list[str]:
    """The action ids (Slack) of a notice's buttons, as it is shown now."""
    return [e["action_id"] for b in notice.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


async def test_a_telegram_customer_is_answered_by_a_slack_agent_and_handed_back(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    async with world(spy, memory, settings, slack_support=SLACK_SUPPORT) as w:
        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(w.in_support, what="the notice in the support channel")
        assert buttons_of(notice) == ["tonebot_take", "tonebot_resolve"]
        assert f"Wants: {ASK}" in notice["text"] and "\nTried: " in notice["text"]  # the brief on the notice
        [escalation] = await w.bot.escalations.all()
        await eventually(lambda: len(w.to_alice()) == 1, what="the bot's answer that it asked a person")

        for _ in range(2):  # a double click takes it once
            await w.slack_post(button("tonebot_take", escalation.id, notice["ts"]), form=True)
        joined = await eventually(lambda: [t for t in w.to_alice() if "has joined" in t], what="the joined line")
        assert joined == ["Dana from our support team has joined the conversation and will answer you here."]
        await eventually(lambda: buttons_of(w.slack.messages[notice["ts"]]) == ["tonebot_resolve"], what="taken")
        assert "Taken over by slack:Dana" in w.slack.messages[notice["ts"]]["text"]

        reply = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
        reply["event"]["thread_ts"] = notice["ts"]
        await w.slack_post(reply)
        await w.slack_post(reply, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})  # redelivered
        words = "Hi, I am Dana from support. Your parcel left our warehouse today & arrives Friday."
        await eventually(lambda: f"Dana: {words}" in w.to_alice(), what="the agent's words in the Telegram chat")

        note = json.loads(json.dumps(reply))  # a private note in the thread: kept for the team, never relayed
        note["event"].update(text="// refund approved by finance, do not promise more", ts="1800000021.000300")
        note["event_id"] = "Ev0AGENTNOTE"
        await w.slack_post(note)
        await w.slack_post(note, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})  # redelivered
        await eventually(lambda: [m for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"]) if m["text"] == NOTE_KEPT],
                         what="the note acknowledged in the thread")  # fmt: skip
        [case] = await w.bot.handoff.cases()
        assert [(n.author, n.text) for n in case.notes] == [("Dana", "refund approved by finance, do not promise more")]
        assert not [t for t in w.to_alice() if "finance" in t] and "finance" not in str(await memory.messages(
            ConversationKey("telegram", str(ALICE))))  # fmt: skip

        canned = json.loads(json.dumps(reply))  # "/canned NAME" in the thread: that canned reply is sent
        canned["event"].update(text="/canned eta", ts="1800000022.000400")
        canned["event_id"] = "Ev0AGENTCANNED"
        await w.slack_post(canned)
        await eventually(lambda: f"Dana: {CANNED_ETA}" in w.to_alice(), what="the canned reply in the Telegram chat")
        unknown = json.loads(json.dumps(canned))
        unknown["event"].update(text="/canned nope", ts="1800000023.000500")
        unknown["event_id"] = "Ev0AGENTUNKNOWN"
        await w.slack_post(unknown)  # no such reply: the agent is told in the thread, the customer hears nothing
        await eventually(lambda: [m for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"]) if "'nope'" in m["text"]],
                         what="the unknown canned reply refused in the thread")  # fmt: skip
        assert not [t for t in w.to_alice() if "nope" in t]

        chats = len(w.spy.chats)
        w.telegram.push(private("Great, thank you! <!channel>", message_id=2))
        relayed = await eventually(
            lambda: [m for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"]) if "Great, thank you!" in m["text"]],
            what="the customer's answer in the thread",
        )
        assert relayed[0]["text"].startswith("💬 Alice Liddell: Great, thank you! &lt;!channel&gt;")  # escaped
        assert any(label in relayed[0]["text"] for label in ("positive", "neutral", "negative"))
        await asyncio.sleep(0.5)  # the bot stays silent: no answer to message 2
        assert len(w.spy.chats) == chats and not [m for m in w.telegram.sent_to(ALICE) if m.get("reply_to") == 2]
        assert w.to_alice().count(f"Dana: {words}") == 1 and len(joined) == 1  # relayed once each

        await w.slack_post(button("tonebot_resolve", escalation.id, notice["ts"]), form=True)
        await eventually(lambda: buttons_of(w.slack.messages[notice["ts"]]) == [], what="resolved")
        w.telegram.push(private("When exactly will it arrive?", message_id=3))
        await eventually(
            lambda: [m for m in w.telegram.sent_to(ALICE) if m.get("reply_to") == 3 and m.get("edits")],
            what="the bot's answer after the hand-back",
        )
    context = [(m.role, m.content) for m in w.spy.chats[-1]]
    assert ("assistant", words) in context  # the agent's turn, as the support side
    stored = await memory.messages(ConversationKey("telegram", str(ALICE)))
    assert [m.text for m in stored if m.role == "agent"] == [words, CANNED_ETA]  # each stored once


@pytest.mark.parametrize("forum", [True, False], ids=["forum topic", "replies to the notice"])
async def test_a_slack_customer_is_answered_by_a_telegram_agent(
    spy: SpyEngine, memory: Memory, settings: Settings, forum: bool
) -> None:
    async with world(spy, memory, settings, telegram_support=str(TELEGRAM_SUPPORT), forum=forum) as w:
        await w.slack_post(slack_dm("I want to speak to a human agent now!", 1))
        [notice] = await eventually(lambda: w.telegram.sent_to(TELEGRAM_SUPPORT), what="the notice in the group")
        [escalation] = await w.bot.escalations.all()
        keyboard = [b["callback_data"] for b in notice["reply_markup"]["inline_keyboard"][0]]
        assert keyboard == [f"take:{escalation.id}", f"resolve:{escalation.id}"]
        if forum:
            [(topic, name)] = w.telegram.topics.items()
            assert notice["message_thread_id"] == topic and name.startswith(f"#{escalation.id} slack")
            assert "asked_for_human" in name

        def dm() -> list[str]:
            return [m["text"] for m in w.slack.messages.values() if m["channel"] == SLACK_DM]

        w.telegram.push(callback(f"take:{escalation.id}", notice, 710_001), callback(f"take:{escalation.id}", notice,
                                                                                     710_002))  # fmt: skip
        await eventually(lambda: [t for t in dm() if "Sam Agent from our support team has joined" in t], what="joined")
        await eventually(lambda: len(w.telegram.called("answerCallbackQuery")) == 2, what="both clicks answered")
        await eventually(lambda: len(w.telegram.messages[notice["message_id"]]["reply_markup"]["inline_keyboard"][0])
                         == 1, what="the notice without Take over")  # fmt: skip

        agent = json.loads((DATA / "telegram" / "topic_agent_message.json").read_text())
        agent["update_id"] = 720_000  # update ids only grow
        if not forum:  # a reply to the notice instead of a message in its topic
            for field in ("message_thread_id", "is_topic_message"):
                agent["message"].pop(field)
            agent["message"]["reply_to_message"] = {**notice, "date": 1800000000}
        w.telegram.push(agent, agent)  # served twice (a redelivery)
        words = "Sam Agent: Hello, this is Sam from support. I have refunded the double charge."
        await eventually(lambda: words in dm(), what="the agent's words in the Slack DM")

        await w.slack_post(slack_dm("ok, thanks a lot", 2))
        in_group = await eventually(
            lambda: [m for m in w.telegram.sent_to(TELEGRAM_SUPPORT) if "ok, thanks a lot" in m["text"]],
            what="the customer's answer in the group",
        )
        if forum:
            assert in_group[0]["message_thread_id"] == notice["message_thread_id"]
        else:
            assert in_group[0]["reply_to"] == notice["message_id"]
        assert dm().count(words) == 1

        w.telegram.push(callback(f"resolve:{escalation.id}", notice, 730_000))
        await eventually(lambda: "reply_markup" not in w.telegram.messages[notice["message_id"]], what="resolved")
        if forum:  # the notice is edited first, then the topic closed
            await eventually(lambda: w.telegram.called("closeForumTopic"), what="the topic closed")
        else:
            assert not w.telegram.called("closeForumTopic")
        chats = len(w.spy.chats)
        await w.slack_post(slack_dm("Is my refund final?", 3))
        await eventually(lambda: len(w.spy.chats) > chats, what="the bot answering again")
    assert ("assistant", words.removeprefix("Sam Agent: ")) in [(m.role, m.content) for m in w.spy.chats[-1]]


async def test_an_agent_message_the_customer_cannot_get_is_a_visible_error_in_the_thread(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    async with world(spy, memory, settings, slack_support=SLACK_SUPPORT) as w:
        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(w.in_support, what="the notice")
        w.telegram.blocked.add(ALICE)  # the customer blocked the bot
        reply = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
        reply["event"]["thread_ts"] = notice["ts"]
        await w.slack_post(reply)  # replying takes the conversation over too
        warning = await eventually(
            lambda: [m for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"]) if m["text"].startswith("⚠️")],
            what="the error in the agent's thread",
        )
        assert "Could not deliver to the customer" in warning[0]["text"] and "blocked" in warning[0]["text"]


async def test_forget_deletes_the_agents_turns_and_the_relayed_copies(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    async with world(spy, memory, settings, slack_support=SLACK_SUPPORT) as w:
        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(w.in_support, what="the notice")
        reply = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
        reply["event"]["thread_ts"] = notice["ts"]
        await w.slack_post(reply)
        [relayed] = await eventually(lambda: [m for m in w.telegram.sent_to(ALICE) if m["text"].startswith("Dana:")],
                                     what="the agent's message")  # fmt: skip
        w.telegram.push(private("My order number is 555-1234.", message_id=2))
        await eventually(
            lambda: [m for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"]) if "555-1234" in m["text"]],
            what="the customer's turn in the thread",
        )
        command = private("/forget", message_id=3)
        command["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": 7}]
        w.telegram.push(command)
        await eventually(lambda: any("deleted" in t for t in w.to_alice()), what="the forget answer")
        await eventually(lambda: notice["ts"] not in w.slack.messages, what="the notice deleted")  # it quoted her
        thread = [m["text"] for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"])]
        assert not [t for t in thread if "555-1234" in t]  # the relayed copy is deleted in Slack
        await eventually(lambda: (ALICE, relayed["message_id"]) in w.telegram.deleted, what="the agent's words")
    assert await memory.messages(ConversationKey("telegram", str(ALICE))) == []


async def test_forget_deletes_the_topic_named_after_the_customer_and_tells_webhooks_with_retries(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    """Regression (#25.4): the notices (quoting the customer, with live buttons), the forum topic
    named after them, and the helpdesk webhook outlived /forget; a failed delete was never retried."""
    hook, failures = Receiver(), [2]

    async def flaky_then_ok(request: Any) -> Any:
        from starlette.responses import JSONResponse

        body = await request.body()
        if json.loads(body).get("type") == "forget" and failures[0] > 0:
            failures[0] -= 1
            return JSONResponse({}, 503)
        hook.received.append((dict(request.headers), body))
        return JSONResponse({"ok": True})

    from starlette.applications import Starlette
    from starlette.routing import Route

    app = Starlette(routes=[Route("/hook", flaky_then_ok, methods=["POST"])])
    async with serve_asgi(app) as hook_url:
        settings = dataclasses.replace(settings, notify=dataclasses.replace(settings.notify,
                                       webhook_urls=(f"{hook_url}/hook",)))  # fmt: skip
        async with world(spy, memory, settings, telegram_support=str(TELEGRAM_SUPPORT)) as w:
            w.telegram.push(private(ASK, message_id=1))
            await eventually(lambda: w.telegram.topics, what="the topic")
            await eventually(lambda: hook.received, what="the webhook notice")
            command = private("/forget", message_id=3)
            command["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": 7}]
            w.telegram.push(command)
            await eventually(lambda: any("deleted" in t for t in w.to_alice()), what="the forget answer")

            async def retried() -> bool:
                await w.bot.notifier.deliver_due()  # type: ignore[union-attr]
                return not w.telegram.topics and any(b.get("type") == "forget" for b in hook.bodies())

            await eventually(retried, what="the topic deleted and the webhook told")
    [forget] = [b for b in hook.bodies() if b.get("type") == "forget"]
    assert forget["user_id"] == str(ALICE) and forget["conversation"]["chat_id"] == str(ALICE)
    headers = next(h for h, body in hook.received if b'"forget"' in body)
    assert "x-tonebot-timestamp" in headers  # posted like every event (signed when the secret is set)
    assert not [m for m in w.telegram.messages.values() if ASK in m.get("text", "")]


async def test_the_buttons_work_in_socket_mode_too(spy: SpyEngine, memory: Memory, settings: Settings) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_sdk.socket_mode.request import SocketModeRequest

    from tests.bot.adapters.test_slack_e2e import RecordingSocketClient

    async with world(spy, memory, settings, slack_support=SLACK_SUPPORT) as w:
        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(w.in_support, what="the notice")
        [escalation] = await w.bot.escalations.all()
        handler = AsyncSocketModeHandler(w.slack_adapter.app, "xapp-1-test")
        socket = RecordingSocketClient(handler.client.logger)
        payload = button("tonebot_take", escalation.id, notice["ts"])
        request = SocketModeRequest(type="interactive", envelope_id="env-7", payload=payload)
        await handler.handle(socket, request)  # type: ignore[arg-type]
        assert [ack.envelope_id for ack in socket.acks] == ["env-7"]
        await eventually(lambda: [t for t in w.to_alice() if "has joined" in t], what="the joined line")
        await handler.close_async()
    [taken] = await w.bot.escalations.all()
    assert taken.taken_by == "slack:Dana"


async def test_only_agents_act_and_an_agents_mention_of_the_bot_is_relayed_once_without_it(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    """Regression (#25.7 and low items): anyone in the support channel acted as an agent; a reply
    mentioning the bot was relayed twice (message + app_mention) with the raw <@U...>; a file was
    dropped without a word."""
    async with world(spy, memory, settings, slack_support=SLACK_SUPPORT, slack_agents=("U0AGENT001",)) as w:
        w.telegram.push(private(ASK, message_id=1))
        [notice] = await eventually(w.in_support, what="the notice")
        [escalation] = await w.bot.escalations.all()
        stranger = button("tonebot_take", escalation.id, notice["ts"])
        stranger["user"]["id"] = "U0STRANGER"
        await w.slack_post(stranger, form=True)
        reply = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
        reply["event"].update(thread_ts=notice["ts"], user="U0STRANGER", text="I can see everything")
        await w.slack_post(reply)
        await eventually(lambda: w.slack.called("chat.postEphemeral"), what="the stranger told")
        await asyncio.sleep(0.3)
        assert (await w.bot.escalations.get(escalation.id)).taken_by is None  # type: ignore[union-attr]
        assert not [t for t in w.to_alice() if "I can see everything" in t]

        mention = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
        mention["event"].update(thread_ts=notice["ts"], text="<@U0BOT00001> it ships today", ts="1800000030.000100")
        await w.slack_post(mention)
        as_app_mention = json.loads(json.dumps(mention))
        as_app_mention["event"]["type"], as_app_mention["event_id"] = "app_mention", "Ev0AGENT002"
        await w.slack_post(as_app_mention)
        await eventually(lambda: "Dana: it ships today" in w.to_alice(), what="the agent's words")
        filed = json.loads((DATA / "slack" / "agent_thread_reply.json").read_text())
        filed["event"].update(thread_ts=notice["ts"], subtype="file_share", ts="1800000040.000100")
        await w.slack_post(filed)
        await eventually(lambda: [m for m in w.slack.in_thread(SLACK_SUPPORT, notice["ts"])
                                  if "files cannot be relayed" in m["text"]], what="the file warning")  # fmt: skip
        await asyncio.sleep(0.3)
    assert w.to_alice().count("Dana: it ships today") == 1


async def test_in_telegram_only_the_support_groups_admins_act_as_agents(
    spy: SpyEngine, memory: Memory, settings: Settings
) -> None:
    async with world(spy, memory, settings, telegram_support=str(TELEGRAM_SUPPORT)) as w:
        w.telegram.admins = {222}
        w.telegram.push(private(ASK, message_id=1))
        notices = await eventually(lambda: w.telegram.sent_to(TELEGRAM_SUPPORT), what="the notice")
        notice = notices[0]
        [escalation] = await w.bot.escalations.all()
        press = callback(f"take:{escalation.id}", notice, update_id=900_001)  # after the customer's 800_001
        press["callback_query"]["from"]["id"] = 333  # in the group, not an admin
        w.telegram.push(press)
        await eventually(lambda: [c for c in w.telegram.called("answerCallbackQuery") if "administrators" in
                                  str(c.get("text"))], what="the refusal")  # fmt: skip
        assert (await w.bot.escalations.get(escalation.id)).taken_by is None  # type: ignore[union-attr]
