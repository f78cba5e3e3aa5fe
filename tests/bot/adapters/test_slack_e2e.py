"""The real Bolt app in HTTP mode against a fake Slack Web API on loopback, on the real model."""

import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.adapters.slack import SlackSettings
from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.web import create_app
from bot.admission import SLOW_DOWN
from bot.commands import help_text
from core.bot import Bot
from core.errors import ConfigError
from core.events import ConversationKey, IncomingMessage
from core.ledger import Accepted
from tests.auxil.fake_slack import FakeSlackAPI
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import eventually, serve_asgi
from tests.auxil.spy import SpyEngine

DATA = Path(__file__).resolve().parents[2] / "data" / "slack"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL, THREAD, SUPPORT = "C0SUPPORT1", "1763769600.000100", "C0ONCALL01"


def envelope(name: str, **event: Any) -> dict[str, Any]:
    body = json.loads((DATA / name).read_text())
    body["event"].update(event)
    return body


def signed(body: bytes, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}


Running = tuple[FakeSlackAPI, SlackAdapter, httpx.AsyncClient]


@asynccontextmanager
async def running_slack(bot: Bot, **changes: Any) -> AsyncIterator[Running]:
    api = FakeSlackAPI()
    async with serve_asgi(api.app()) as url:
        settings = SlackSettings(
            **{
                "enabled": True,
                "mode": "http",
                "api_base_url": f"{url}/api/",
                "edit_interval": 0.2,
                "support_channel": SUPPORT,
                **changes,
            }
        )
        secrets = dict(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=SECRET)
        async with SlackAdapter(bot, settings, secrets) as adapter:
            transport = httpx.ASGITransport(app=create_app(bot, adapter.routes()))
            async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
                yield api, adapter, client


@pytest.fixture
async def slack(testbot: Bot) -> AsyncIterator[Running]:
    async with running_slack(testbot) as running:
        yield running


async def post_event(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    raw = json.dumps(body).encode()
    return await client.post(
        "/slack/events", content=raw, headers={"content-type": "application/json", **signed(raw), **headers}
    )


async def answered(api: FakeSlackAPI, testbot: Bot, turns: int) -> str:
    """Wait until the thread holds `turns` stored answers and Slack shows the last one."""

    async def final() -> str | None:
        stored = await testbot.memory.messages(ConversationKey("slack", CHANNEL, THREAD))
        answers = [m.text for m in stored if m.role == "assistant"]
        shown = [m["text"] for m in api.in_thread(CHANNEL, THREAD)]
        return answers[-1] if len(answers) == turns and answers[-1] in shown else None

    return await eventually(final, what=f"answer {turns} in the thread")


async def test_mention_follow_up_retry_and_429(
    slack: tuple[FakeSlackAPI, SlackAdapter, httpx.AsyncClient], testbot: Bot, spy: SpyEngine
) -> None:
    api, _, client = slack
    started = time.monotonic()
    response = await post_event(client, envelope("channel_mention.json"))
    assert response.status_code == 200 and time.monotonic() - started < 3  # acked before the model works
    first = await answered(api, testbot, 1)
    assert api.in_thread(CHANNEL, THREAD)[0]["text"] == first  # the placeholder, updated to the reply

    retry = await post_event(client, envelope("channel_mention.json"), **{"X-Slack-Retry-Num": "1"})
    assert retry.status_code == 200

    api.throttle["chat.postMessage"] = 1
    assert (await post_event(client, envelope("thread_followup.json"))).status_code == 200
    await answered(api, testbot, 2)
    turns = [m.content for m in spy.chats[-1] if m.role != "system"]  # (upset ones: the soothing prompt before)
    assert turns == ["my deploy keeps failing and I am losing my mind", first, "it still fails on step 3"]
    assert api.throttle["chat.postMessage"] == 0  # the 429 was answered, waited out and retried
    assert len(api.in_thread(CHANNEL, THREAD)) == 2  # the retry produced no second reply
    assert len(spy.chats) == 2


async def test_signatures_challenge_and_ignored_events(
    slack: tuple[FakeSlackAPI, SlackAdapter, httpx.AsyncClient], testbot: Bot
) -> None:
    api, _, client = slack
    raw = json.dumps(envelope("dm.json")).encode()
    bad = await client.post(
        "/slack/events", content=raw, headers={"content-type": "application/json", **signed(raw, "x")}
    )
    stale = await client.post(
        "/slack/events", content=raw, headers={"content-type": "application/json", **signed(raw, age=600)}
    )
    assert bad.status_code == stale.status_code == 401

    challenge = json.dumps({"type": "url_verification", "token": "t", "challenge": "c-123"}).encode()
    ok = await client.post(
        "/slack/events", content=challenge, headers={"content-type": "application/json", **signed(challenge)}
    )
    assert ok.status_code == 200 and ok.json() == {"challenge": "c-123"}

    for name in ("thread_followup.json", "bot_message.json", "message_changed.json", "channel_chatter.json"):
        assert (await post_event(client, envelope(name))).status_code == 200
    assert await testbot.memory.messages(ConversationKey("slack", CHANNEL, THREAD)) == []
    assert api.called("chat.postMessage") == []


async def slash(client: httpx.AsyncClient, text: str, channel: str = CHANNEL) -> dict[str, Any]:
    form = {
        "command": "/tonebot",
        "text": text,
        "user_id": "U0ALICE001",
        "channel_id": channel,
        "team_id": "T0TEAM0001",
    }
    raw = urllib.parse.urlencode(form).encode()
    response = await client.post(
        "/slack/events", content=raw, headers={"content-type": "application/x-www-form-urlencoded", **signed(raw)}
    )
    assert response.status_code == 200
    return dict(response.json())


async def test_slash_command_answers_ephemerally(slack: tuple[FakeSlackAPI, SlackAdapter, httpx.AsyncClient]) -> None:
    _, _, client = slack
    assert await slash(client, "help") == {"response_type": "ephemeral", "text": help_text("/tonebot ")}
    assert "deleted 0" in (await slash(client, "forget"))["text"]


async def test_resolve_from_the_support_channel_only(
    slack: tuple[FakeSlackAPI, SlackAdapter, httpx.AsyncClient], testbot: Bot
) -> None:
    _, _, client = slack
    msg = IncomingMessage(ConversationKey("slack", CHANNEL, THREAD), user_id="U0ALICE001", text="human please")
    accepted = await testbot.ledger.accept(msg)
    assert isinstance(accepted, Accepted)
    record = await testbot.escalations.open(accepted.conversation_id, "asked_for_human", [], ())
    assert record is not None
    assert "support channel" in (await slash(client, f"resolve {record.id}"))["text"]
    assert (await slash(client, f"resolve {record.id}", SUPPORT))["text"] == f"Escalation #{record.id} resolved."
    resolved = await testbot.escalations.get(record.id)
    assert resolved is not None and resolved.resolved_by == "slack:U0ALICE001"


class RecordingSocketClient:
    """Stands in for the WebSocket client: records the acks Bolt's socket-mode handler sends."""

    def __init__(self, logger: Any) -> None:
        self.logger, self.acks = logger, []

    async def send_socket_mode_response(self, response: SocketModeResponse) -> None:
        self.acks.append(response)


async def test_socket_mode_envelope_is_acked_and_routed_to_the_same_handler(
    slack: tuple[FakeSlackAPI, SlackAdapter, httpx.AsyncClient], testbot: Bot
) -> None:
    api, adapter, _ = slack
    handler = AsyncSocketModeHandler(adapter.app, "xapp-1-test")
    socket = RecordingSocketClient(handler.client.logger)
    body = envelope("dm.json")
    await handler.handle(socket, SocketModeRequest(type="events_api", envelope_id="env-42", payload=body))  # type: ignore[arg-type]
    assert [ack.envelope_id for ack in socket.acks] == ["env-42"]

    async def reply_shown() -> bool:
        stored = await testbot.memory.messages(ConversationKey("slack", "D0ALICEDM1", ""))
        shown = [m["text"] for m in api.in_thread("D0ALICEDM1", None)]
        return [m.role for m in stored] == ["user", "assistant"] and stored[-1].text in shown

    await eventually(reply_shown, what="the DM reply")
    await handler.close_async()


async def test_reset_in_a_channel_resets_the_threads_the_user_wrote_in(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression: channel conversations are keyed by thread, and the slash command knows no thread."""
    async with running_slack(scriptbot) as (api, _, client):
        await post_event(client, envelope("channel_mention.json"))
        await answered(api, scriptbot, 1)
        assert "Fresh start" in (await slash(client, "reset"))["text"]
        await post_event(client, envelope("thread_followup.json"))
        await answered(api, scriptbot, 2)
    assert [m.role for m in scripted.chats[-1]] == ["system", "user"]  # the thread's history is gone
    assert scripted.chats[-1][-1].content == "it still fails on step 3"


async def test_slack_has_the_per_user_rate_limit_too(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    async with running_slack(scriptbot, rate_limit_per_minute=1) as (api, _, client):
        await post_event(client, envelope("channel_mention.json"))
        await answered(api, scriptbot, 1)
        await post_event(client, envelope("thread_followup.json"))
        await eventually(lambda: SLOW_DOWN in [m["text"] for m in api.in_thread(CHANNEL, THREAD)], what="slow down")
    assert len(scripted.chats) == 1


async def test_a_message_that_is_only_the_mention_gets_the_error_tables_line(scriptbot: Bot) -> None:
    """Regression: it answered nothing at all on Slack (and "something went wrong" on Telegram)."""
    async with running_slack(scriptbot) as (api, _, client):
        await post_event(client, envelope("channel_mention.json", text="<@U0BOT00001>"))
        shown = await eventually(lambda: api.in_thread(CHANNEL, THREAD), what="an answer in the thread")
    assert shown[0]["text"] == "The message has no text: please write what you would like to say."
    assert await scriptbot.memory.messages(ConversationKey("slack", CHANNEL, THREAD)) == []


def test_missing_tokens_are_clear_errors(testbot: Bot) -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackAdapter(testbot, SlackSettings(enabled=True), dict())
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        SlackAdapter(testbot, SlackSettings(enabled=True), dict(SLACK_BOT_TOKEN="xoxb"))
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackAdapter(testbot, SlackSettings(enabled=True, mode="http"), dict(SLACK_BOT_TOKEN="xoxb"))


async def test_a_message_over_the_limit_is_stored_and_answered_with_the_limit(scriptbot: Bot) -> None:
    """Regression (#14 C.12): a Slack DM over max_text_chars got no answer at all."""
    from core.bot import TOO_LONG

    text = ("My order is late. " * 250).strip()
    body = envelope("dm.json", text=text)
    key = ConversationKey("slack", body["event"]["channel"])
    async with running_slack(scriptbot) as (api, _, client):
        assert (await post_event(client, body)).status_code == 200

        async def shown() -> list[str] | None:
            texts = [m["text"] for m in api.messages.values() if m["channel"] == key.chat_id]
            return texts or None

        [answer] = await eventually(shown, what="the limit line in the DM")
    assert answer == TOO_LONG.format(limit=scriptbot.limits.max_text_chars)
    assert [m.text for m in await scriptbot.memory.messages(key)] == [text, answer]


async def test_an_event_while_the_model_is_busy_is_not_acked_and_its_redelivery_answered(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression (#14 A.4): events during start-up or under load were acked, answered with the
    apology (or the busy line) and lost; Slack's retries were ignored."""
    body = envelope("dm.json", text="Where is my invoice?")
    key = ConversationKey("slack", body["event"]["channel"])
    async with running_slack(scriptbot) as (api, _, client):
        scripted.busy = True
        refused = await post_event(client, body)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert await scriptbot.memory.messages(key) == [] and api.messages == {}
        scripted.busy = False
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
        assert (await post_event(client, body, **retry)).status_code == 200

        async def shown() -> list[str] | None:
            texts = [m["text"] for m in api.messages.values() if m["channel"] == key.chat_id]
            return texts if texts and texts[-1].endswith("invoice?") else None

        assert await eventually(shown, what="the answer") == ["You said: Where is my invoice?"]


async def test_an_event_is_stored_before_its_ack_and_one_that_cannot_be_stored_is_not_acked(
    scriptbot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (#14 A.4): Bolt acked an event before anything was stored."""
    body = envelope("dm.json", text="Is my order shipped?")
    key = ConversationKey("slack", body["event"]["channel"])
    store, calls = scriptbot.ledger.store, []

    async def flaky(msg: IncomingMessage) -> bool:
        calls.append(msg.event_id)
        if len(calls) == 1:
            raise OSError("database briefly down")
        return await store(msg)

    monkeypatch.setattr(scriptbot.ledger, "store", flaky)
    async with running_slack(scriptbot) as (api, _, client):
        refused = await post_event(client, body)
        assert refused.status_code == 503 and refused.headers["retry-after"]  # Slack retries it
        assert await scriptbot.memory.messages(key) == []
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
        assert (await post_event(client, body, **retry)).status_code == 200
        assert [m.text for m in await scriptbot.memory.messages(key)][:1] == ["Is my order shipped?"]

        async def shown() -> list[str] | None:
            texts = [m["text"] for m in api.messages.values() if m["channel"] == key.chat_id]
            return texts if texts and texts[-1].endswith("shipped?") else None

        assert await eventually(shown, what="the answer") == ["You said: Is my order shipped?"]
