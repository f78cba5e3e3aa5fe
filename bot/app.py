"""The composition root: settings in, a running bot and its adapters out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import uvicorn

from bot import migrate
from bot.adapters.console import run_console
from bot.adapters.web import create_app
from bot.config import Settings
from core.bot import Bot
from core.engine import open_engine
from core.memory import Memory

log = logging.getLogger(__name__)


@asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[Bot]:
    """Migrate the database, load and warm up the model, and close both on the way out."""
    await asyncio.to_thread(migrate.upgrade, settings.memory.url)
    memory = Memory.open(settings.memory.url)
    try:
        engine = await open_engine(settings.model, settings.sentiment)
        try:
            yield Bot(engine, memory, settings.prompts, settings.memory)
        finally:
            await engine.aclose()
    finally:
        await memory.aclose()


async def serve_web(bot: Bot, settings: Settings) -> None:
    config = uvicorn.Config(
        create_app(bot), host=settings.web.host, port=settings.web.port, log_level=settings.log_level.lower()
    )
    log.info("web chat on http://%s:%d/", settings.web.host, settings.web.port)
    await uvicorn.Server(config).serve()


# Each enabled adapter is a coroutine that runs until the process stops. An explicit dict, no discovery.
ADAPTERS: dict[str, Callable[[Bot, Settings], Awaitable[None]]] = {"web": serve_web}


def enabled_adapters(settings: Settings) -> list[str]:
    return [name for name in ADAPTERS if getattr(settings, name).enabled]


async def serve(settings: Settings) -> None:
    names = enabled_adapters(settings)
    if not names:
        log.warning("no adapter is enabled; nothing to serve")
        return
    async with running_bot(settings) as bot:
        await asyncio.gather(*(ADAPTERS[name](bot, settings) for name in names))


async def chat(settings: Settings) -> None:
    async with running_bot(settings) as bot:
        await run_console(bot)
