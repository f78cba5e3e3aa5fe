"""The composition root: settings in, a running bot and its adapters out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager

import uvicorn

from bot import migrate
from bot.adapters import console
from bot.adapters.console import run_console
from bot.adapters.web import api as web
from bot.adapters.web import create_app
from bot.config import Settings
from bot.delivery import Followed
from bot.exposure import check_exposure
from bot.knowledge import open_knowledge, warm
from bot.notify import Notifications
from bot.platform import Adapter, Services
from bot.recovery import Recovery
from bot.registry import PLATFORMS
from core import loading
from core.bot import Bot
from core.db import Database
from core.engine import Engine, Health
from core.errors import Busy
from core.escalations import EscalationStore
from core.events import ChatMessage, Mood
from core.handoff import Handoff
from core.learning import learning
from core.memory import Memory
from core.outbox import Outbox
from core.settings import ModelSettings, SentimentSettings

log = logging.getLogger(__name__)

FOLLOWED = {web.PLATFORM: Followed(), console.PLATFORM: Followed()}
"""Conversations whose pages follow the database: agents' messages reach them by being stored."""


class Loading:
    """Stands in for the engine until the model is loaded: the web server is already up (so
    /readyz can say "loading"), and the API answers 503 + Retry-After meanwhile."""

    def health(self) -> Health:
        return Health("loading")

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        raise Busy("the model is still loading")

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        raise Busy("the model is still loading")
        yield ""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        pass


def engine_kind(settings: ModelSettings) -> str:
    """`model.engine`, with "auto" decided: llama.cpp for a .gguf file, Transformers for the rest."""
    if settings.engine != "auto":
        return settings.engine
    source = loading.resolve(settings.id, settings.gguf_file, settings.fallback_to_embedded)
    return "llamacpp" if source.gguf_file else "transformers"


async def open_engine(settings: ModelSettings, sentiment: SentimentSettings, api_key: str = "") -> Engine:
    """The engine factory, by `model.engine`: in this process (llama.cpp or Transformers), or an
    OpenAI-compatible server."""
    kind = await asyncio.to_thread(engine_kind, settings)
    if kind == "openai":
        from core.remote import OpenAICompatEngine

        return await OpenAICompatEngine.connect(settings, sentiment, api_key)
    if kind == "llamacpp":
        from core.local.llamacpp import LlamaCppEngine  # the xllamacpp wheel; no torch

        return await LlamaCppEngine.load(settings, sentiment)
    from core.local.engine import TransformersEngine  # imports torch and transformers

    return await TransformersEngine.load(settings, sentiment)


def headless_fit(engine: Engine, sentiment: SentimentSettings) -> Coroutine[None, None, None] | None:
    """A served GGUF with no head that fits it (`sentiment.head = "auto"`): one fitted in the
    background (core/local/autofit.py), or None."""
    from core.local.llamacpp import LlamaCppEngine  # the module only: xllamacpp is imported by a load

    if not isinstance(engine, LlamaCppEngine) or engine.head is not None:
        return None
    if sentiment.head != "auto" or not sentiment.fit_automatically:
        return None

    async def fit() -> None:
        from core.local import autofit

        try:
            await autofit.fit_in_background(engine, sentiment.fit_files)
        except Exception:
            log.exception("the background mood-head fit failed: the mood stays on label scoring")

    return fit()


@asynccontextmanager
async def running_bot(settings: Settings, upgrade: bool = True) -> AsyncIterator[tuple[Bot, asyncio.Task[None]]]:
    """Migrate the database, retry pending notices, and start loading the model; close all on the
    way out. Yields the Bot at once, with a `Loading` engine, and the task that swaps the model in."""
    if upgrade:
        await asyncio.to_thread(migrate.upgrade, settings.memory.url)
    async with contextlib.AsyncExitStack() as stack:
        db = Database.open(settings.memory.url)  # one database, one of each store on it
        stack.push_async_callback(db.aclose)
        memory, escalations = Memory(db), EscalationStore(db)
        knowledge = open_knowledge(db, settings)
        notifications = Notifications(memory, escalations, Outbox(db), settings)
        notifications.attach({}, FOLLOWED)  # the platforms' adapters join when they run (serve)
        stack.push_async_callback(notifications.aclose)
        handoff = Handoff(
            memory, escalations, settings.handoff, destinations=notifications.destinations,
            changed=notifications.changed, resolved=learning(memory, knowledge),
            rating_line=settings.outcome.rating_line if settings.outcome.ask_rating else "",
        )  # fmt: skip
        bot = Bot(
            Loading(),
            memory,
            settings.prompts,
            settings.memory,
            settings.escalation,
            notifications,
            log_text=settings.log_message_text,
            escalations=escalations,
            handoff=handoff,
            knowledge=knowledge,
            outcome=settings.outcome,
        )

        async def load() -> None:
            bot.engine = await open_engine(settings.model, settings.sentiment, settings.secrets.inference_api_key)
            if (fit := headless_fit(bot.engine, settings.sentiment)) is not None:
                fitting = asyncio.create_task(fit)  # label scoring answers meanwhile; the head serves when ready
                stack.callback(fitting.cancel)

        loading = asyncio.create_task(load())
        warming = asyncio.create_task(warm(knowledge))
        stack.callback(warming.cancel)
        stack.push_async_callback(_close_engine, bot, loading)
        retries = asyncio.create_task(notifications.run_retries(bot.handoff.tick))
        stack.callback(retries.cancel)
        insights = asyncio.create_task(bot.insights.run())  # the week's outcomes: gauges, the Insights page
        stack.callback(insights.cancel)
        yield bot, loading


async def _close_engine(bot: Bot, loading: asyncio.Task[None]) -> None:
    loading.cancel()
    with contextlib.suppress(BaseException):
        await loading
    await bot.engine.aclose()


def open_adapters(bot: Bot, settings: Settings) -> dict[str, Adapter]:
    """The enabled platforms' adapters, through the registry (constructing one checks its settings)."""
    return {
        name: PLATFORMS[name].open(Services(bot, settings.platforms[name], settings.secrets.platforms))
        for name in settings.enabled_platforms()
    }


async def serve(settings: Settings, upgrade: bool = True) -> None:
    """Web server first (so /readyz reports the load), then the model, then the platform adapters;
    on SIGTERM/SIGINT: stop taking requests, let in-flight replies finish, stop polling, close."""
    check_exposure(settings)
    async with running_bot(settings, upgrade) as (bot, loading), contextlib.AsyncExitStack() as stack:
        adapters = open_adapters(bot, settings)
        routes = [route for adapter in adapters.values() for route in adapter.routes()]
        server: uvicorn.Server | None = None
        if settings.web.enabled or routes:
            app = create_app(bot, routes, settings.web, settings.secrets)
            server = _Server(
                uvicorn.Config(
                    app,
                    host=settings.web.host,
                    port=settings.web.port,
                    log_config=None,  # tonebot's logging setup (text or JSON) covers uvicorn too
                    proxy_headers=True,
                    forwarded_allow_ips=settings.web.forwarded_allow_ips,
                    timeout_graceful_shutdown=settings.web.shutdown_grace_seconds,
                )
            )
            serving = asyncio.create_task(server.serve())
            log.info("web server on http://%s:%d/ (model loading)", settings.web.host, settings.web.port)

        def stop_serving() -> None:
            if server is not None:
                server.should_exit = True
                app.state.live.close()  # live streams end now instead of holding the grace period

        stop = _on_signal(stop_serving)
        await loading
        for adapter in adapters.values():
            await stack.enter_async_context(adapter)
        channels = {name: adapter.channel for name, adapter in adapters.items()}
        if isinstance(bot.notifier, Notifications):  # where agents work: the adapters with a support chat
            bot.notifier.attach({name: a.desk for name, a in adapters.items() if a.desk}, {**FOLLOWED, **channels})
            bot.notifier.changed(None)  # a round now: answers and notices a crash left are sent first
        if settings.recovery.enabled:  # what a crash left: answered and sent by the first replica to look
            recovering = asyncio.create_task(Recovery(bot, settings.recovery, channels).run())
            stack.callback(recovering.cancel)
        log.info("ready: %s", ", ".join(["web"] * bool(server) + list(adapters)))
        if server is not None:
            await serving  # returns after uvicorn's graceful shutdown (in-flight requests finish)
        else:
            await stop.wait()
        log.info("shutting down: stopping adapters, closing the model and the database")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: tonebot's handler stops it, and tonebot still has
    adapters, the model and the database to close afterwards (uvicorn would re-raise the signal)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_signal(then: Callable[[], object]) -> asyncio.Event:
    """SIGTERM / SIGINT set the returned event and call `then`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handle() -> None:
        log.info("signal received: finishing in-flight work")
        stop.set()
        then()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle)
    return stop


async def chat(settings: Settings) -> None:
    async with running_bot(settings) as (bot, loading):
        await loading
        await run_console(bot)
