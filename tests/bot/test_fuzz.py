"""Property-based fuzzing of every endpoint and webhook (#14 B.7, Hypothesis): whatever arrives —
broken JSON, deep nesting, lone surrogates, NULs, wrong types, signed garbage — the answer is
never a 5xx other than 503 + Retry-After, and no other user's stored turns change.

The bot runs on the scripted engine: what is under test is the edge, the Bot and the storage
(thousands of cases; the real model's own handling of bad text is tested in core/local)."""

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.adapters.slack import SlackSettings
from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.web import create_app
from core.bot import Bot
from core.events import ConversationKey, IncomingMessage
from tests.auxil.fake_slack import FakeSlackAPI
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.servers import serve_asgi
from tests.bot.adapters.test_telegram_e2e import ME, TOKEN, telegram_settings

SLACK_SECRET, TELEGRAM_SECRET = "f" * 32, "s3cret"
VICTIM = IncomingMessage(ConversationKey("web", "victim-9d2f"), user_id="victim-user-9d2f", text="my private words")
PATHS = ["/v1/chat", "/v1/chat/stream", "/v1/sentiment", "/v1/reset", "/v1/forget", "/telegram/webhook",
         "/slack/events", "/v1/escalations", "/healthz", "/"]  # fmt: skip
FIELDS = ["conversation_id", "user_id", "user_name", "event_id", "text", "texts", "update_id", "message", "event",
          "type", "challenge", "chat", "from", "channel", "ts", "by"]  # fmt: skip
SURROGATE, NUL = "\U0010fffe", "\U0010fffd"  # markers, replaced by JSON escapes once dumped

strings = st.text(st.characters(codec="utf-8") | st.sampled_from([SURROGATE, NUL, "\n", "🙂", "字"]), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | strings
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)
)
objects = st.dictionaries(st.sampled_from(FIELDS) | strings, values, max_size=6)


def dumped(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("\\udbff\\udffe", "\\ud800").replace("\\udbff\\udffd", "\\u0000").encode()


bodies = (
    objects.map(dumped)
    | values.map(dumped)
    | st.binary(max_size=200)
    | st.integers(1, 5000).map(lambda n: b"[" * n)
    | st.integers(1, 3000).map(lambda n: b'{"a":' * n)
)
requests = st.tuples(
    st.sampled_from(PATHS),
    bodies,
    st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    st.booleans(),  # signed (Slack) / the right secret (Telegram)
)


@pytest.fixture
async def http(scriptbot: Bot) -> AsyncIterator[httpx.AsyncClient]:
    telegram, slack = FakeBotAPI(me=ME), FakeSlackAPI()
    async with serve_asgi(telegram.app()) as telegram_url, serve_asgi(slack.app()) as slack_url:
        hook = telegram_settings(telegram_url, mode="webhook", webhook_url="https://bot.example/telegram/webhook")
        secrets = dict(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SLACK_SECRET,
        )
        slack_settings = SlackSettings(enabled=True, mode="http", api_base_url=f"{slack_url}/api/")
        async with (
            TelegramAdapter(scriptbot, hook, secrets) as tg,
            SlackAdapter(scriptbot, slack_settings, secrets) as sl,
        ):
            app = create_app(scriptbot, [*tg.routes(), *sl.routes()])
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tonebot.test") as client:
                yield client


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests)
async def test_no_request_gets_a_5xx_or_touches_another_users_turns(
    http: httpx.AsyncClient, scriptbot: Bot, request: tuple[str, bytes, str, bool]
) -> None:
    if not await scriptbot.memory.knows(VICTIM.key):
        await scriptbot.handle(VICTIM)
    before = [(m.role, m.text) for m in await scriptbot.memory.messages(VICTIM.key)]
    path, body, content_type, authentic = request
    headers = {"content-type": content_type} if content_type else {}
    if authentic and path == "/slack/events":
        timestamp = str(int(time.time()))
        # Slack's scheme over the raw bytes (slack_sdk's helper wants text, and these may not be UTF-8)
        mac = hmac.new(SLACK_SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
        signature = f"v0={mac.hexdigest()}"
        headers |= {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    if authentic and path == "/telegram/webhook":
        headers["X-Telegram-Bot-Api-Secret-Token"] = TELEGRAM_SECRET
    response = await http.post(path, content=body, headers=headers)
    assert response.status_code < 500 or (response.status_code == 503 and response.headers.get("retry-after")), (
        response.status_code,
        response.text[:300],
    )
    assert [(m.role, m.text) for m in await scriptbot.memory.messages(VICTIM.key)] == before
