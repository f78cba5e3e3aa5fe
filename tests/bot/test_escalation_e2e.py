"""Escalation end to end through /v1/chat, with a loopback webhook receiver. The moods are scripted:
these tests are about what the pipeline does with them (which moods the model reads is tested on
the model itself)."""

import asyncio
import dataclasses
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bot.adapters.web import create_app
from bot.app import FOLLOWED
from bot.config import Secrets, Settings
from bot.notify import Notifications
from core.bot import Bot
from core.escalations import EscalationStore
from core.memory import Memory
from core.outbox import Outbox
from tests.auxil.receiver import Receiver
from tests.auxil.scripted import MILD_NEGATIVE, NEGATIVE, ScriptedEngine
from tests.auxil.servers import eventually, serve_asgi

TOKEN = "operator-s3cret"
HOOK_SECRET = "hook-s3cret"
ANGRY = [
    "Hello, I have a question about my order.",
    "It still has not arrived after three weeks. This is unacceptable and I am really upset!",
    "I am furious. This is the worst service I have ever had and nobody helps me!",
    "This is a disgrace. I am so angry, terrible, awful service!",
]

MOODS = {ANGRY[1]: MILD_NEGATIVE, ANGRY[2]: MILD_NEGATIVE, ANGRY[3]: NEGATIVE, "Still angry. Terrible!": NEGATIVE}
Factory = Callable[..., tuple[Bot, Notifications]]


@pytest.fixture
def spy(scripted: ScriptedEngine) -> ScriptedEngine:
    scripted.moods = MOODS
    return scripted


@pytest.fixture
def make_bot(spy: ScriptedEngine, memory: Memory, settings: Settings) -> Factory:
    def make(hook_url: str, **policy: object) -> tuple[Bot, Notifications]:
        configured = dataclasses.replace(
            settings,
            escalation=dataclasses.replace(settings.escalation, **policy),
            notify=dataclasses.replace(settings.notify, webhook_urls=(hook_url,), retry_seconds=0.0),
            secrets=Secrets(escalation_webhook_secret=HOOK_SECRET, operator_token=TOKEN),
        )
        escalations = EscalationStore(memory.db)
        notifications = Notifications(memory, escalations, Outbox(memory.db), configured)
        notifications.attach({}, FOLLOWED)  # as the composition root does: the web chat follows the database
        bot = Bot(spy, memory, configured.prompts, configured.memory, configured.escalation, notifications,
                  escalations=escalations)  # fmt: skip
        return bot, notifications

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    async with serve_asgi(hook.app()) as url:
        yield hook, f"{url}/hook"


def client_for(bot: Bot) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(bot, secrets=Secrets(operator_token=TOKEN)))
    return httpx.AsyncClient(transport=transport, base_url="http://tonebot.test")


async def say(client: httpx.AsyncClient, text: str, conversation: str = "angry-1") -> dict:
    response = await client.post("/v1/chat", json={"conversation_id": conversation, "user_id": "cora", "text": text})
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_angry_conversation_escalates_once_with_one_signed_notice(
    make_bot: Factory, receiver: tuple[Receiver, str], spy: ScriptedEngine, settings: Settings
) -> None:
    hook, url = receiver
    bot, notifications = make_bot(url)
    async with client_for(bot) as client:
        replies = [await say(client, text) for text in ANGRY[:3]]
        assert not any(r["escalated"] for r in replies)  # the bad mood offers a person first, once
        assert [bool(r["offered"]) for r in replies] == [False, False, True]
        assert replies[2]["reply"].endswith(settings.escalation.offer_line)
        assert replies[2]["offered"] == "repeated_negative"
        assert all(r["reply"] and not r["paused"] for r in replies)
        taken = await say(client, "Yes please")  # the yes escalates, for the offer's reason
        assert taken["escalated"] and taken["reply"] == settings.escalation.notify_line
        await eventually(lambda: hook.received, what="the webhook notice")
        await say(client, ANGRY[3])
        assert spy.chats[-1][-2].content == settings.prompts.soothing  # an escalation open: soothing
        await say(client, "Still angry. Terrible!")
        # the customer's turns after the escalating one reach the helpdesk as events of the escalation
        later = [ANGRY[3], "Still angry. Terrible!"]
        await eventually(lambda: len(hook.received) == 1 + len(later), what="the relayed customer messages")

        listed = (await client.get("/v1/escalations", headers={"Authorization": f"Bearer {TOKEN}"})).json()
    await notifications.aclose()
    events = [b for b in hook.bodies() if b.get("type") == "customer_message"]
    assert [e["text"] for e in events] == later and events[-1]["mood"]["label"] == "negative"
    headers, body = hook.received[0]
    expected = hmac.new(HOOK_SECRET.encode(), headers["x-tonebot-timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["x-tonebot-signature"] == f"sha256={expected.hexdigest()}"
    notice = hook.bodies()[0]
    assert {e["escalation_id"] for e in events} == {notice["escalation_id"]}
    conversation = notice["conversation"]  # web ids live in the caller's namespace (its session here)
    assert (conversation["platform"], conversation["thread_id"]) == ("web", "")
    assert conversation["chat_id"].startswith("s.") and conversation["chat_id"].endswith("/angry-1")
    assert notice["reason"] == "repeated_negative"
    assert [m["text"] for m in notice["transcript"] if m["role"] == "user"] == [*ANGRY[:3], "Yes please"]
    assert [e["id"] for e in listed["escalations"]] == [notice["escalation_id"]]


async def test_pause_mode_silences_the_bot_until_an_operator_resolves(
    make_bot: Factory, receiver: tuple[Receiver, str], spy: ScriptedEngine, settings: Settings
) -> None:
    _, url = receiver
    bot, notifications = make_bot(url, mode="pause", cooldown_minutes=0)
    async with client_for(bot) as client:
        first = await say(client, "Can I talk to a real person please?", "pause-1")
        assert first["escalated"] and first["reply"] == settings.escalation.pause_line
        chats = len(spy.chats)
        silent = await say(client, "Hello? Anyone there?", "pause-1")
        assert silent["paused"] and silent["reply"] == "" and not silent["escalated"]
        assert len(spy.chats) == chats  # the model was not asked to reply

        assert (await client.get("/v1/escalations")).status_code == 401
        assert (await client.get("/v1/escalations", headers={"Authorization": "Bearer nope"})).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        [open_one] = (await client.get("/v1/escalations", headers=auth)).json()["escalations"]
        assert open_one["reason"] == "asked_for_human"
        assert [m["text"] for m in open_one["transcript"]][-1] == "Hello? Anyone there?"
        resolved = await client.post(f"/v1/escalations/{open_one['id']}/resolve", json={"by": "dana"}, headers=auth)
        assert resolved.status_code == 200 and resolved.json()["resolved_by"] == "dana"
        assert (await client.post("/v1/escalations/999/resolve", headers=auth)).status_code == 404

        back = await say(client, "Thanks, what are your opening hours?", "pause-1")
        assert back["reply"] and not back["paused"] and len(spy.chats) == chats + 1
        assert (await client.get("/v1/escalations", headers=auth)).json()["escalations"] == []
    await notifications.aclose()


async def test_a_dead_webhook_never_costs_the_reply_and_is_retried(make_bot: Factory, memory: Memory) -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bot, notifications = make_bot(f"http://127.0.0.1:{port}/hook")
    store, outbox = EscalationStore(memory.db), Outbox(memory.db)
    async with client_for(bot) as client:
        reply = await say(client, "I want to speak to a human agent now!", "dead-1")
    assert reply["escalated"] and reply["reply"]

    async def failed_once() -> bool:
        [escalation] = await store.all()
        [delivery] = await outbox.deliveries(escalation.id)
        return delivery.attempts >= 1 and delivery.status == "pending" and bool(delivery.last_error)

    await eventually(failed_once, what="a recorded failed delivery")
    hook = Receiver()
    async with serve_asgi(hook.app(), port=port):
        await notifications.deliver_due()
    [escalation] = await store.all()
    [delivery] = await outbox.deliveries(escalation.id)
    assert delivery.status == "sent" and delivery.attempts >= 2
    assert len(hook.received) == 1 and hook.bodies()[0]["reason"] == "asked_for_human"
    await notifications.aclose()


async def test_the_helpdesk_api_relays_an_agent_message_once_and_hands_back(
    make_bot: Factory, receiver: tuple[Receiver, str], memory: Memory
) -> None:
    """#15: a helpdesk with its own inbox (Zendesk, Chatwoot...) answers through the operator API:
    the customer gets the agent's words once per event id, the bot is silent meanwhile, and the
    customer's turns reach the helpdesk's webhook; after the hand-back it is a 409."""
    hook, url = receiver
    bot, notifications = make_bot(url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client_for(bot) as client:
        assert (await say(client, "I want to speak to a human agent now!", "help-1"))["escalated"]
        [escalation] = (await client.get("/v1/escalations", headers=auth)).json()["escalations"]
        path = f"/v1/escalations/{escalation['id']}/messages"
        body = {"text": "Hello, Zoe from support here. <script>x</script>", "by": "Zoe", "event_id": "zd-1"}
        first = await client.post(path, json=body, headers=auth)
        again = await client.post(path, json=body, headers=auth)
        assert first.status_code == again.status_code == 200
        assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
        assert (await client.post(path, json={"text": " "}, headers=auth)).status_code == 422
        assert (await client.post("/v1/escalations/999/messages", json=body, headers=auth)).status_code == 404
        assert (await client.post(path, json=body)).status_code == 401

        silent = await say(client, "Thanks Zoe, waiting for the refund.", "help-1")
        assert silent["paused"] and silent["reply"] == ""
        await eventually(lambda: any(b.get("text") == "Thanks Zoe, waiting for the refund." for b in hook.bodies()),
                         what="the customer's turn at the helpdesk")  # fmt: skip
        [listed] = (await client.get("/v1/escalations", headers=auth)).json()["escalations"]
        assert listed["status"] == "with_human" and listed["taken_by"] == "console:Zoe" and listed["first_reply_at"]
        turns = [(m["role"], m["author"], m["text"]) for m in listed["transcript"]]
        assert ("agent", "Zoe", body["text"]) in turns and turns.count(("agent", "Zoe", body["text"])) == 1
        assert (
            "assistant",
            "tonebot",
            "Zoe from our support team has joined the conversation and will answer you here.",
        ) in turns

        assert (
            await client.post(f"/v1/escalations/{escalation['id']}/resolve", json={}, headers=auth)
        ).status_code == 200
        closed = await client.post(path, json={**body, "event_id": "zd-2"}, headers=auth)
        assert closed.status_code == 409 and "resolved" in closed.json()["error"]
        back = await say(client, "Is the refund done?", "help-1")
        assert back["reply"] and not back["paused"]
    await notifications.aclose()


async def test_an_idle_hand_off_tells_the_customer_and_reminds_the_team_once(
    make_bot: Factory, receiver: tuple[Receiver, str], memory: Memory
) -> None:
    from core.settings import HandoffSettings

    hook, url = receiver
    bot, notifications = make_bot(url)
    bot.handoff.settings = HandoffSettings(idle_minutes=0.001)  # 60 ms
    async with client_for(bot) as client:
        assert (await say(client, "I want to speak to a human agent now!", "idle-1"))["escalated"]
        await say(client, "Hello? Is anybody there?", "idle-1")
        await asyncio.sleep(0.1)
        assert await bot.handoff.check_idle() == 1
        assert await bot.handoff.check_idle() == 0  # once per idle period, and only while the customer waits
        [escalation] = (await client.get("/v1/escalations", headers={"Authorization": f"Bearer {TOKEN}"})).json()[
            "escalations"
        ]
    texts = [m["text"] for m in escalation["transcript"]]
    assert texts[-1] == HandoffSettings().waiting_line
    await eventually(lambda: any(b.get("text") == HandoffSettings().waiting_line for b in hook.bodies()),
                     what="the reminder at the helpdesk")  # fmt: skip
    await notifications.aclose()
