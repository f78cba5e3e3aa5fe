"""Live streams (#25.8): one reader per process however many streams are open (and none takes
SQLite's write lock), caps, a lifetime with Last-Event-ID resume, closed at once on shutdown; the
bot's ordinary replies are not sent twice to the chat page."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import event

from bot.adapters.web import create_app
from bot.config import Secrets, WebSettings
from core.bot import Bot
from core.events import Agent, AgentMessage
from tests.auxil.scripted import NEGATIVE, ScriptedEngine
from tests.auxil.servers import serve_asgi

TOKEN = "live-token-" + "z" * 20
HUMAN = "I want to talk to a human please"


async def events(client: httpx.AsyncClient, path: str, into: list[dict[str, Any]], **headers: str) -> None:
    async with client.stream("GET", path, headers=headers) as response:
        into.append({"status": response.status_code})
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                into.append({"id": line[4:]})
            elif line.startswith("data: "):
                into.append(json.loads(line[6:]))


@contextlib.asynccontextmanager
async def server(bot: Bot, **web: Any) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(bot, web=WebSettings(rate_limit="", **web), secrets=Secrets(api_tokens=(TOKEN,)))
    async with serve_asgi(app) as url:
        yield url, app


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def test_many_streams_one_reader_no_write_lock_and_no_duplicate_bot_replies(
    scriptbot: Bot, scripted: ScriptedEngine
) -> None:
    statements: list[str] = []
    event.listen(scriptbot.memory.db.engine.sync_engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))  # fmt: skip
    scripted.moods[HUMAN] = NEGATIVE
    async with (
        server(scriptbot, streams_per_client=50) as (url, app),
        httpx.AsyncClient(base_url=url, timeout=30, headers=auth()) as client,
    ):
        reply = await client.post("/v1/chat", json={"conversation_id": "c0", "text": HUMAN})
        assert reply.json()["escalated"]
        got: list[list[dict[str, Any]]] = [[] for _ in range(10)]
        tasks = [asyncio.create_task(events(client, f"/v1/chat/events?conversation_id=c{n}", got[n]))
                 for n in range(10)]  # fmt: skip
        await asyncio.sleep(2)  # every stream connected and caught up
        statements.clear()
        await asyncio.sleep(3)
        idle = list(statements)
        await client.post("/v1/chat", json={"conversation_id": "c0", "text": "Hello again"})  # an ordinary reply
        [case] = await scriptbot.handoff.cases()
        await scriptbot.handoff.say(AgentMessage(case.escalation.id, Agent("a", "Ana", "console"), "Ana here"))
        await asyncio.sleep(2)
        app.state.live.close()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)  # closed at once
    assert not [s for s in idle if "BEGIN" in s.upper()], idle  # reads took no write lock
    assert len(idle) <= 3 * 2 + 2  # one reader: about one read a second, not one per stream
    texts = [e.get("text") for e in got[0] if "text" in e]
    assert texts[1:] == ["Ana here"] and "has joined" in texts[0]  # the bot's own reply is not sent again
    assert all(not [e for e in g if "text" in e] for g in got[1:])


async def test_caps_lifetime_and_resume(scriptbot: Bot, scripted: ScriptedEngine) -> None:
    scripted.moods[HUMAN] = NEGATIVE
    async with (
        server(scriptbot, streams_per_client=2, stream_minutes=0.02) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=30, headers=auth()) as client,
    ):
        await client.post("/v1/chat", json={"conversation_id": "c", "text": HUMAN})
        boxes: list[list[dict[str, Any]]] = [[], [], []]
        streams = [asyncio.create_task(events(client, "/v1/chat/events?conversation_id=c", box)) for box in boxes[:2]]
        await asyncio.sleep(0.3)
        await events(client, "/v1/chat/events?conversation_id=c", boxes[2])
        assert boxes[2][0]["status"] == 429  # a third stream for the same caller
        await asyncio.wait_for(asyncio.gather(*streams), timeout=10)  # the lifetime (1.2 s) ends them
        [case] = await scriptbot.handoff.cases()
        await scriptbot.handoff.say(AgentMessage(case.escalation.id, Agent("a", "Ana", "console"), "while away"))
        resumed: list[dict[str, Any]] = []
        await events(client, "/v1/chat/events?conversation_id=c", resumed, **{"Last-Event-ID": "0"})
    assert resumed[0]["status"] == 200 and "while away" in [e.get("text") for e in resumed]
