"""Network deployments (#25.6, .9, .10 and low items): a public chat page (cookie sessions on the
chat routes only, tokens for the rest, Secure cookies, escalations limited per session and address),
a valid token never refused for its address, the operator token rate-limited and long, reserved
event ids, long names."""

from __future__ import annotations

import asyncio
import dataclasses

import httpx
import pytest

from bot import migrate
from bot.adapters.web import create_app
from bot.config import Secrets, Settings, WebSettings
from bot.exposure import check_exposure
from core.bot import Bot
from core.errors import ConfigError
from core.events import ConversationKey, IncomingMessage
from core.ledger import Accepted, Ledger
from core.memory import Memory
from tests.auxil.postgres import postgres_database
from tests.auxil.scripted import NEGATIVE, ScriptedEngine

TOKEN = "api-token-" + "x" * 24
OPERATOR = "operator-token-" + "y" * 24
HUMAN = "I want to talk to a human right now!"


def client(bot: Bot, public: bool = True, address: str = "203.0.113.7") -> httpx.AsyncClient:
    web = WebSettings(public_chat=public, rate_limit="")
    app = create_app(bot, web=web, secrets=Secrets(api_tokens=(TOKEN,), operator_token=OPERATOR))
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="https://chat.example.test")


async def test_a_public_chat_admits_cookie_sessions_to_the_chat_routes_only(scriptbot: Bot) -> None:
    async with client(scriptbot) as visitor:
        chat = await visitor.post("/v1/chat", json={"conversation_id": "c1", "text": "Hello there"})
        sentiment = await visitor.post("/v1/sentiment", json={"texts": ["hi"]})
        operator = await visitor.get("/v1/escalations")
        with_token = await visitor.post("/v1/sentiment", json={"texts": ["hi"]},
                                        headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert chat.status_code == 200 and chat.json()["reply"]
    cookie = chat.headers["set-cookie"].lower()
    assert "tonebot_session=" in cookie and "secure" in cookie and "samesite=strict" in cookie
    assert (sentiment.status_code, operator.status_code, with_token.status_code) == (401, 401, 200)


async def test_public_visitors_page_the_team_a_limited_number_of_times(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    """Regression (#25.6): anyone could page the team 30 times a minute with new conversation ids."""
    scripted.moods[HUMAN] = NEGATIVE
    escalated = []
    for session in range(4):  # four sessions (cookie jars) from one address
        async with client(scriptbot) as visitor:
            for n in range(3):
                reply = await visitor.post("/v1/chat", json={"conversation_id": f"c{session}-{n}", "text": HUMAN})
                escalated.append((session, reply.json()["escalated"]))
    per_session = [sum(e for s, e in escalated if s == session) for session in range(4)]
    assert per_session[0] == 2  # escalation.public_per_user_hour
    assert sum(per_session) == 6  # escalation.public_per_origin_hour
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(scriptbot, secrets=Secrets(api_tokens=(TOKEN,)))),
        base_url="http://t", headers={"Authorization": f"Bearer {TOKEN}"},
    ) as api:  # fmt: skip
        trusted = await api.post("/v1/chat", json={"conversation_id": "api-1", "text": HUMAN})
    assert trusted.json()["escalated"]  # token holders (and platform users) are not limited


async def test_the_operator_token_is_rate_limited_and_a_valid_one_still_gets_in(scriptbot: Bot) -> None:
    """Regression (#25.10): 60 wrong operator tokens got 60 x 401."""
    async with client(scriptbot) as http:
        wrong = [
            (await http.get("/v1/escalations", headers={"Authorization": f"Bearer guess-{n}"})).status_code
            for n in range(12)
        ]
        right = await http.get("/v1/escalations", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert wrong[:10] == [401] * 10 and wrong[10:] == [429, 429]
    assert right.status_code == 200


def test_exposure_rules(settings: Settings) -> None:
    public = dataclasses.replace(settings, web=dataclasses.replace(settings.web, host="0.0.0.0", public_chat=True))
    check_exposure(public)  # an open chat page needs no API token
    closed = dataclasses.replace(public, web=dataclasses.replace(public.web, public_chat=False))
    with pytest.raises(ConfigError, match="API_TOKENS"):
        check_exposure(closed)
    with pytest.raises(ConfigError, match="OPERATOR_TOKEN is shorter"):
        check_exposure(dataclasses.replace(settings, secrets=Secrets(operator_token="short")))


async def test_reserved_event_ids_are_refused(scriptbot: Bot) -> None:
    """Regression (#25, low): `event_id: "handoff:1:joined"` suppressed the hand-off's joined line."""
    async with client(scriptbot) as visitor:
        response = await visitor.post("/v1/chat", json={"conversation_id": "c", "text": "hi",
                                                        "event_id": "handoff:1:joined"})  # fmt: skip
    assert response.status_code == 422 and "reserved" in response.json()["error"]


async def test_a_long_display_name_is_stored_cut_on_postgresql() -> None:
    """Regression (#25, low): a 300-character user_name was a 500 on PostgreSQL."""
    async with postgres_database() as url:
        await asyncio.to_thread(migrate.upgrade, url)
        memory = Memory.open(url)
        try:
            msg = IncomingMessage(ConversationKey("web", "long"), user_id="u", text="hi", user_name="N" * 300)
            assert isinstance(await Ledger(memory.db).accept(msg), Accepted)
            [stored] = await memory.messages(msg.key)
        finally:
            await memory.aclose()
    assert stored.author_name == "N" * 256
