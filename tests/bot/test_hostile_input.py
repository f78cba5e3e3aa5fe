"""Malformed and hostile input (#14 B.6, B.7): every one is a 4xx with a clear JSON error, nothing
reaches the model or the database half-done, and no other caller is affected."""

import json

import httpx
import pytest

from bot.adapters.slack import SlackAdapter
from bot.adapters.telegram import TelegramAdapter
from bot.adapters.web import create_app
from bot.config import Secrets, SlackSettings
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
        secrets = Secrets(slack_bot_token="xoxb-test", slack_signing_secret="s" * 32)
        async with (
            SlackAdapter(scriptbot, settings, secrets) as adapter,
            client(create_app(scriptbot, adapter.routes())) as http,
        ):
            for body in (b"{", b"[" * 60000, b"payload=%7B"):
                response = await http.post("/slack/events", content=body, headers={"content-type": "application/json"})
                assert response.status_code == 401, (body[:10], response.status_code, response.text)


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"update_id": "x"}', b"[" * 60000, b'{"update_id": 1, "message": 5}'])
async def test_a_malformed_telegram_update_with_the_right_secret_is_a_400(scriptbot: Bot, body: bytes) -> None:
    api = FakeBotAPI(me=ME)
    async with serve_asgi(api.app()) as url:
        hook = telegram_settings(url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
        secrets = Secrets(telegram_bot_token=TOKEN, telegram_webhook_secret="s3cret")
        async with (
            TelegramAdapter(scriptbot, hook, secrets) as adapter,
            client(create_app(scriptbot, adapter.routes())) as http,
        ):
            response = await http.post(
                "/telegram/webhook", content=body, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}
            )
    assert response.status_code == 400, response.text
    assert json.loads(response.text)["error"]
