"""The composition root: settings in, a running bot and its adapters out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import uvicorn
from starlette.routing import BaseRoute

from bot import migrate
from bot.adapters.console import run_console
from bot.adapters.web import create_app
from bot.config import Settings
from bot.notify import Notifications
from core.bot import Bot
from core.engine import open_engine
from core.memory import EscalationStore, Memory

log = logging.getLogger(__name__)


@asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[Bot]:
    """Migrate the database, load and warm up the model, retry pending notices; close all on the way out."""
    await asyncio.to_thread(migrate.upgrade, settings.memory.url)
    async with contextlib.AsyncExitStack() as stack:
        memory = Memory.open(settings.memory.url)
        stack.push_async_callback(memory.aclose)
        notifications = Notifications(memory, EscalationStore(memory), settings)
        stack.push_async_callback(notifications.aclose)
        engine = await open_engine(settings.model, settings.sentiment)
        stack.push_async_callback(engine.aclose)
        retries = asyncio.create_task(notifications.run_retries())
        stack.callback(retries.cancel)
        yield Bot(engine, memory, settings.prompts, settings.memory, settings.escalation, notifications)


class Adapter(Protocol):
    """A platform adapter: an async context manager that may add routes to the web server."""

    async def __aenter__(self) -> Adapter: ...
    async def __aexit__(self, *exc: object) -> None: ...
    def routes(self) -> list[BaseRoute]: ...


def _telegram(bot: Bot, settings: Settings) -> Adapter:
    from bot.adapters.telegram import TelegramAdapter

    return TelegramAdapter(bot, settings.telegram, settings.secrets, settings.notify.telegram_chat_id)


def _slack(bot: Bot, settings: Settings) -> Adapter:
    from bot.adapters.slack import SlackAdapter

    return SlackAdapter(bot, settings.slack, settings.secrets, settings.notify.slack_channel)


# The platform adapters, by config section. An explicit dict, no discovery.
ADAPTERS: dict[str, Callable[[Bot, Settings], Adapter]] = {"telegram": _telegram, "slack": _slack}


def enabled_adapters(settings: Settings) -> list[str]:
    return [name for name in ADAPTERS if getattr(settings, name).enabled]


async def serve(settings: Settings) -> None:
    """Run the enabled adapters and the web server until interrupted."""
    async with running_bot(settings) as bot, contextlib.AsyncExitStack() as stack:
        routes: list[BaseRoute] = []
        for name in enabled_adapters(settings):
            adapter = await stack.enter_async_context(ADAPTERS[name](bot, settings))
            routes += adapter.routes()
        if not settings.web.enabled and not routes:
            await asyncio.Event().wait()  # polling adapters work on their own until interrupted
            return
        config = uvicorn.Config(
            create_app(bot, routes, operator_token=settings.secrets.operator_token),
            host=settings.web.host,
            port=settings.web.port,
            log_level=settings.log_level.lower(),
        )
        log.info("web server on http://%s:%d/", settings.web.host, settings.web.port)
        await uvicorn.Server(config).serve()


async def chat(settings: Settings) -> None:
    async with running_bot(settings) as bot:
        await run_console(bot)
