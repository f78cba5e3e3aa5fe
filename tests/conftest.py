"""Fixtures: settings on the embedded model, the real model loaded once, a fresh database, a bot on
the real model (`testbot`), and a bot on a scripted engine for pipeline and error-path tests."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot import migrate
from bot.config import Settings, load_settings
from bot.tools.bench import llamacpp_server
from core import loading
from core.bot import Bot
from core.ledger import Ledger
from core.local.engine import TransformersEngine
from core.memory import Memory
from tests.auxil.scripted import ScriptedEngine
from tests.auxil.spy import SpyEngine


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    # short replies keep the suite fast; no test depends on a reply's length
    environ = {"TONEBOT_MODEL__ID": "embedded", "TONEBOT_MODEL__FALLBACK_TO_EMBEDDED": "false",
               "TONEBOT_MODEL__MAX_NEW_TOKENS": "48"}  # fmt: skip
    return load_settings(environ=environ)


@pytest.fixture(scope="session")
async def engine(base_settings: Settings) -> AsyncIterator[TransformersEngine]:
    """The real embedded model, loaded and warmed up once per test session."""
    engine = await TransformersEngine.load(base_settings.model, base_settings.sentiment)
    yield engine
    await engine.aclose()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tonebot.db'}"


@pytest.fixture
async def memory(db_url: str) -> AsyncIterator[Memory]:
    await asyncio.to_thread(migrate.upgrade, db_url)
    memory = Memory.open(db_url)
    yield memory
    await memory.aclose()


@pytest.fixture
def settings(base_settings: Settings, db_url: str) -> Settings:
    return dataclasses.replace(base_settings, memory=dataclasses.replace(base_settings.memory, url=db_url))


@pytest.fixture
def spy(engine: TransformersEngine) -> SpyEngine:
    return SpyEngine(engine)


@pytest.fixture
def testbot(spy: SpyEngine, memory: Memory, settings: Settings) -> Bot:
    """A Bot on the real model and a fresh database; `spy` shows what the model was asked."""
    return Bot(spy, memory, settings.prompts, settings.memory)


@pytest.fixture
def scripted() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def scriptbot(scripted: ScriptedEngine, memory: Memory, settings: Settings) -> Bot:
    """A Bot on a scripted engine (moods and replies the test writes), with escalation on."""
    return Bot(scripted, memory, settings.prompts, settings.memory, settings.escalation)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server (xllamacpp wheel) on loopback, with the embedded GGUF."""
    source = loading.embedded_source()
    server = llamacpp_server(source.path / source.gguf_file, parallel=4, context=8192)
    yield f"{server.listening_address}/v1"
    del server


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.auxil.report import LINES

    if LINES:
        terminalreporter.section("measured")
        for line in LINES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def embed() -> Iterator[object]:
    """The knowledge base's real sentence embedder (all-MiniLM-L6-v2, packaged), loaded once."""
    from core.local.embedder import LazyEmbedder

    yield LazyEmbedder()


@pytest.fixture
def ledger(memory: Memory) -> Ledger:
    return Ledger(memory.db)
