"""Malformed and hostile input (#14 B.6, B.7): every one is a 4xx with a clear JSON error, nothing
reaches the model or the database half-done, and no other caller is affected."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from bot.adapters.slack import SlackSettings
from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.web import create_app
from bot.config import Secrets
from core.bot import Bot
from core.memory import Memory
from tests.auxil.fake_slack import FakeSlackAPI
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import serve_asgi
from tests.auxil.web import web_messages
from tests.bot.adapters.test_telegram_e2e import ME, TOKEN, telegram_settings


def client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tonebot.test")  # type: ignore[arg-type]


def raw(text: str) -> bytes:
    """A JSON body as a hostile client writes it: escapes the decoder turns into lone surrogates."""
    return text.encode()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat", raw('{"conversation_id": "c1", "text": "broken \\ud800 text"}')),
        ("/v1/chat", raw('{"conversation_id": "c1", "text": "nul \\u0000 inside"}')),
        ("/v1/chat", raw('{"conversation_id": "\\udc00", "text": "hello"}')),
        ("/v1/chat", raw('{"conversation_id": "c1", "user_id": "\\ud800", "text": "hello"}')),
        ("/v1/chat", raw('{"conversation_id": "c1", "event_id": "\\udfff", "text": "hello"}')),
        ("/v1/chat/stream", raw('{"conversation_id": "c1", "text": "\\ud800"}')),
        ("/v1/reset", raw('{"conversation_id": "\\udc00"}')),
        ("/v1/forget", raw('{"user_id": "\\udc00"}')),
        ("/v1/sentiment", raw('{"texts": ["fine", "\\ud800"]}')),
        ("/v1/chat", b"[" * 60000),
        ("/v1/chat", b'{"a":' * 30000),
        ("/v1/chat", b"\xff\xfe not utf-8"),
    ],
)
async def test_malformed_web_input_is_a_4xx_with_a_json_error(
    scriptbot: Bot, memory: Memory, path: str, body: bytes
) -> None:
    async with client(create_app(scriptbot)) as http:
        response = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert await web_messages(memory, "c1") == []


async def test_a_bad_text_in_a_sentiment_batch_fails_only_its_own_request(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    async with client(create_app(scriptbot)) as http:
        bad = await http.post(
            "/v1/sentiment", content=raw('{"texts": ["\\ud800"]}'), headers={"content-type": "application/json"}
        )
        good = await http.post("/v1/sentiment", json={"texts": ["all good"]})
    assert bad.status_code == 422 and "text" in bad.json()["error"]
    assert good.status_code == 200 and len(good.json()["results"]) == 1
    assert scripted.classified == ["all good"]  # the bad text never reached the model


async def test_an_unsigned_slack_body_is_refused_before_it_is_parsed(scriptbot: Bot) -> None:
    api = FakeSlackAPI()
    async with serve_asgi(api.app()) as url:
        settings = SlackSettings(enabled=True, mode="http", api_base_url=f"{url}/api/")
        secrets = dict(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s" * 32)
        async with (
            SlackAdapter(scriptbot, settings, secrets) as adapter,
            client(create_app(scriptbot, adapter.routes())) as http,
        ):
            for body in (b"{", b"[" * 60000, b"payload=%7B"):
                response = await http.post("/slack/events", content=body, headers={"content-type": "application/json"})
                assert response.status_code == 401, (body[:10], response.status_code, response.text)


TEXT_OBJECT = (
    b'{"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"},'
    b' "from": {"id": 1, "is_bot": false, "first_name": "A"}, "text": {"a": 1}}}'
)


@pytest.mark.parametrize(
    "body", [b"[]", b"{", b'{"update_id": "x"}', b"[" * 60000, b'{"update_id": 1, "message": 5}', TEXT_OBJECT]
)
async def test_a_malformed_telegram_update_with_the_right_secret_is_a_400(scriptbot: Bot, body: bytes) -> None:
    api = FakeBotAPI(me=ME)
    async with serve_asgi(api.app()) as url:
        hook = telegram_settings(url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
        secrets = dict(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_WEBHOOK_SECRET="s3cret")
        async with (
            TelegramAdapter(scriptbot, hook, secrets) as adapter,
            client(create_app(scriptbot, adapter.routes())) as http,
        ):
            response = await http.post(
                "/telegram/webhook", content=body, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            )
    assert response.status_code == 400, response.text
    assert json.loads(response.text)["error"]


async def test_slack_bodies_are_refused_before_reading_unless_signed_recently_and_read_bounded(
    scriptbot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (#25.3): /slack/events read the whole body, unbounded and untimed, before checking
    the signature (an unsigned 64 MiB POST: RSS 87 -> 220 MB; a body that stopped short: held forever)."""
    from bot import bodies

    monkeypatch.setattr(bodies, "BODY_SECONDS", 0.3)
    api, pulled = FakeSlackAPI(), []

    async def huge() -> AsyncIterator[bytes]:
        for _ in range(1024):
            pulled.append(1)
            yield b"x" * 65536

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"type": "event_callback", '
        await asyncio.sleep(5)
        yield b"}"

    fresh = {"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=00"}
    stale = {"x-slack-request-timestamp": str(int(time.time()) - 3600), "x-slack-signature": "v0=00"}
    async with serve_asgi(api.app()) as url:
        settings = SlackSettings(enabled=True, mode="http", api_base_url=f"{url}/api/")
        secrets = dict(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s" * 32)
        async with (
            SlackAdapter(scriptbot, settings, secrets) as adapter,
            client(create_app(scriptbot, adapter.routes())) as http,
        ):
            unsigned = await http.post("/slack/events", content=huge(), headers={"content-length": str(64 << 20)})
            old = await http.post("/slack/events", content=b"{}", headers=stale)
            oversize = await http.post(
                "/slack/events", content=huge(), headers={**fresh, "content-length": str(64 << 20)}
            )
            chunked = await http.post("/slack/events", content=huge(), headers=fresh)
            slow = await http.post("/slack/events", content=stalls(), headers=fresh)
    assert (unsigned.status_code, old.status_code, oversize.status_code) == (401, 401, 413)
    assert chunked.status_code == 413 and len(pulled) < 1024 + 40  # counted as it arrived, not read whole
    assert slow.status_code == 408


async def test_an_oversize_or_stalled_operator_action_is_refused(
    scriptbot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import bodies

    monkeypatch.setattr(bodies, "BODY_SECONDS", 0.3)

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"by": '
        await asyncio.sleep(5)
        yield b'"x"}'

    app = create_app(scriptbot, secrets=Secrets(operator_token="o" * 32))
    auth = {"Authorization": "Bearer " + "o" * 32, "content-type": "application/json"}
    async with client(app) as http:
        big = await http.post("/v1/escalations/1/take", content=b"{" + b" " * (1 << 20) + b"}", headers=auth)
        slow = await http.post("/v1/escalations/1/take", content=stalls(), headers=auth)
    assert (big.status_code, slow.status_code) == (413, 408)


async def test_agents_are_not_refused_while_the_model_is_loading(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    """Regression (#25, low): in Slack HTTP mode and on the Telegram webhook, an agent's reply or
    button press got 503 while the model loaded or was full; relaying needs no model."""
    from core.engine import Health
    from tests.bot.adapters.test_slack_e2e import signed

    scripted.state = Health("loading")
    slack_api, telegram_api = FakeSlackAPI(), FakeBotAPI(me=ME)
    async with serve_asgi(slack_api.app()) as slack_url, serve_asgi(telegram_api.app()) as telegram_url:
        slack_settings = SlackSettings(enabled=True, mode="http", api_base_url=f"{slack_url}/api/")
        hook = telegram_settings(telegram_url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
        secrets = dict(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s" * 32, TELEGRAM_BOT_TOKEN=TOKEN,
                          TELEGRAM_WEBHOOK_SECRET="s3cret")  # fmt: skip
        async with (
            SlackAdapter(scriptbot, replace(slack_settings, support_channel="C0SUPPORT1"), secrets) as slack,
            TelegramAdapter(scriptbot, replace(hook, support_chat_id="-1001"), secrets) as telegram,
            client(create_app(scriptbot, [*slack.routes(), *telegram.routes()])) as http,
        ):
            ts = "1763769600.000200"
            event = {"type": "message", "user": "U0AGENT01", "text": "On it", "ts": ts,
                     "thread_ts": "1763769600.000100", "channel": "C0SUPPORT1", "event_ts": ts}  # fmt: skip
            body = json.dumps({"type": "event_callback", "event_id": "Ev9", "team_id": "T1", "event": event}).encode()
            json_signed = {"content-type": "application/json", **signed(body, "s" * 32)}
            agent = await http.post("/slack/events", content=body, headers=json_signed)
            customer_event = {**event, "channel": "C0CUSTOMER", "user": "U0CUST"}
            body = json.dumps({"type": "event_callback", "event_id": "Ev8", "team_id": "T1",
                               "event": customer_event}).encode()  # fmt: skip
            json_signed = {"content-type": "application/json", **signed(body, "s" * 32)}
            customer = await http.post("/slack/events", content=body, headers=json_signed)
            presser = {"id": 5, "is_bot": False, "first_name": "A"}
            press = {"update_id": 7, "callback_query": {"id": "q1", "from": presser, "chat_instance": "1",
                                                        "data": "take:1"}}  # fmt: skip
            button = await http.post(
                "/telegram/webhook", json=press, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            )
    assert (agent.status_code, button.status_code) == (200, 200), (agent.text, button.text)
    assert customer.status_code == 503
