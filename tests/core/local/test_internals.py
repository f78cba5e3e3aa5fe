"""The contract with Transformers' internals (core/local/internals.py): the minor they were tested
on is the one installed and the only one pyproject admits, and a batcher that dies is seen dead."""

import asyncio
import re
import tomllib
from pathlib import Path

import httpx
import transformers

from bot.adapters.web import create_app
from bot.config import Settings
from core.bot import Bot
from core.events import ConversationKey
from core.local import internals
from core.local.engine import TransformersEngine
from core.memory import Memory
from tests.auxil.servers import eventually

ROOT = Path(__file__).resolve().parents[3]


def test_the_installed_transformers_is_the_minor_its_internals_were_tested_on() -> None:
    assert internals.minor(transformers.__version__) == internals.TESTED, (
        f"transformers {transformers.__version__} is installed, core/local/internals.py was tested on "
        f"{internals.TESTED}: check its internals, then update TESTED, pyproject.toml and the lock"
    )


def test_pyproject_admits_only_the_tested_minor() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [d for d in dependencies if re.match(r"transformers\b", d)]
    major, minor = internals.TESTED.split(".")
    assert spec == f"transformers>={major}.{minor},<{major}.{int(minor) + 1}"


def test_the_lock_pins_the_tested_minor() -> None:
    pins = re.findall(r"^transformers==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert [internals.minor(v) for v in pins] == [internals.TESTED]


async def test_a_batcher_that_dies_makes_the_engine_dead_and_readyz_503(settings: Settings, memory: Memory) -> None:
    engine = await TransformersEngine.load(settings.model, settings.sentiment)
    try:
        assert engine.health().state == "ready"

        def crash() -> None:
            raise RuntimeError("the generation loop fell over")

        internals.run_before_each_step(engine.batcher, crash)
        await eventually(lambda: engine.health().state == "dead", timeout=30, what="the engine to see its death")
        assert "fell over" in engine.health().detail
        bot = Bot(engine, memory, settings.prompts, settings.memory)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(bot)), base_url="http://t") as c:
            ready = await c.get("/readyz")
            chat = await c.post("/v1/chat", json={"conversation_id": "dead", "text": "hello?"})
        assert ready.status_code == 503 and ready.json()["status"] == "model not running"
        assert chat.status_code == 503 and chat.headers["retry-after"]
        assert await memory.messages(ConversationKey("web", "dead")) == []  # refused before anything was stored
    finally:
        await asyncio.to_thread(engine.batcher.stop, True, 30)
