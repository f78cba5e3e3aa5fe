"""64 conversations at once on one replica on PostgreSQL (#25): every one answered. A turn holds
its conversation for the whole reply; that hold must not pin a pooled connection (the advisory lock
did, and 16 two-second turns exhausted SQLAlchemy's 5 + 10 pool: 13 of 16 answered 500)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence

import httpx

from bot import migrate
from bot.adapters.web import create_app
from bot.config import Secrets, Settings, WebSettings
from core.bot import Bot
from core.events import ChatMessage
from core.memory import Memory
from tests.auxil.postgres import postgres_database
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.servers import serve_asgi

CONVERSATIONS = 64


class SlowEngine(ScriptedEngine):
    """Each reply takes two seconds, as a real one does."""

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        await asyncio.sleep(2)
        async for chunk in super().reply(messages):
            yield chunk


async def test_64_concurrent_conversations_on_one_replica_are_all_answered(settings: Settings) -> None:
    async with postgres_database() as url:
        await asyncio.to_thread(migrate.upgrade, url)
        memory = Memory.open(url)
        bot = Bot(SlowEngine(), memory, settings.prompts, dataclasses.replace(settings.memory, url=url))
        app = create_app(bot, web=WebSettings(rate_limit=""), secrets=Secrets(api_tokens=("load",)))
        try:
            async with serve_asgi(app) as base, httpx.AsyncClient(base_url=base, timeout=120) as client:

                async def customer(n: int) -> httpx.Response:
                    body = {"conversation_id": f"load-{n}", "text": f"Question {n}: where is my order?"}
                    return await client.post("/v1/chat", json=body, headers={"Authorization": "Bearer load"})

                responses = await asyncio.gather(*(customer(n) for n in range(CONVERSATIONS)))
        finally:
            await memory.aclose()
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * CONVERSATIONS, {s: statuses.count(s) for s in set(statuses)}
    assert all(f"Question {n}" in r.json()["reply"] for n, r in enumerate(responses))
