"""The knowledge base over the operator API, and learning from hand-offs (#26): a question the bot
could not answer, answered by a person, becomes a proposed entry; approved, the bot answers it word
for word from then on; the gaps report lists what it could not answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.adapters.web import create_app
from bot.config import Secrets, Settings
from core.bot import Bot
from core.events import Agent, AgentMessage, ConversationKey, IncomingMessage
from core.knowledge import Knowledge
from core.knowledge.retrieval import Embed
from core.knowledge.store import KnowledgeStore
from core.memory import Memory
from tests.auxil.scripted import ScriptedEngine

KB = Path(__file__).resolve().parents[1] / "data" / "kb"
TOKEN = "operator-" + "k" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTION = "Do you sell fishing rods in your shop?"


@pytest.fixture
async def bot(scripted: ScriptedEngine, memory: Memory, embed: Embed, settings: Settings) -> Bot:
    knowledge = Knowledge(KnowledgeStore(memory.db), embed, settings.knowledge)
    await knowledge.add([KB / "articles"])
    return Bot(scripted, memory, settings.prompts, settings.memory, settings.escalation, knowledge=knowledge)


def operator(bot: Bot) -> httpx.AsyncClient:
    app = create_app(bot, secrets=Secrets(operator_token=TOKEN))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH)


async def test_a_helpdesk_syncs_entries_and_articles_and_the_console_searches(bot: Bot) -> None:
    async with operator(bot) as api:
        assert (await api.get("/v1/knowledge", headers={"Authorization": "Bearer wrong"})).status_code == 401
        entry = {"id": "hours", "question": "When are the docks open?", "answer": "Every day from 9 am to 7 pm."}
        assert (await api.post("/v1/knowledge/entries", json=entry)).json() == {"outcome": "added"}
        assert (await api.post("/v1/knowledge/entries", json=entry)).json() == {"outcome": "unchanged"}
        article = {
            "id": "kb-17",
            "title": "Lockers",
            "text": "Lockers at every dock cost $3 a day.",
            "url": "https://x.example/17",
        }
        assert (await api.post("/v1/knowledge/articles", json=article)).json() == {"outcome": "added"}
        bad = await api.post("/v1/knowledge/entries", json={"id": "x", "question": "", "answer": "y"})
        found = (await api.get("/v1/knowledge/search", params={"q": "what time do the docks open?"})).json()
        documents = (await api.get("/v1/knowledge")).json()["documents"]
    assert bad.status_code == 422
    source = {"id": "hours", "title": "When are the docks open?", "url": ""}
    assert found["answer"] == {"text": "Every day from 9 am to 7 pm.", "kind": "curated", "sources": [source]}
    assert {d["cite"] for d in documents} >= {"hours", "kb-17", "returns.md"}


async def test_a_hand_off_the_bot_could_not_answer_becomes_an_entry_once_approved(bot: Bot) -> None:
    key = ConversationKey("web", "learn")
    first = await bot.handle(IncomingMessage(key, user_id="u", text=QUESTION))
    assert not first.grounded
    await bot.handle(IncomingMessage(key, user_id="u", text="Can I talk to a real person please?"))
    [case] = await bot.handoff.cases()
    await bot.handoff.say(AgentMessage(case.escalation.id, Agent("a", "Ana", "console"), "No, we only rent kayaks."))
    await bot.handoff.resolve(case.escalation.id, "console:Ana")
    async with operator(bot) as api:
        gaps = (await api.get("/v1/knowledge/gaps")).json()["gaps"]
        [proposed] = (await api.get("/v1/knowledge", params={"status": "proposed"})).json()["documents"]
        before = await bot.handle(IncomingMessage(ConversationKey("web", "again"), user_id="v", text=QUESTION))
        assert (await api.post(f"/v1/knowledge/{proposed['id']}/approve")).status_code == 200
    after = await bot.handle(IncomingMessage(ConversationKey("web", "later"), user_id="w", text=QUESTION))
    assert gaps[0] == {"question": QUESTION.lower(), "times": 1}
    assert proposed["question"] == QUESTION and proposed["answer"] == "No, we only rent kayaks."
    assert not before.grounded  # a proposal answers nothing until a person approves it
    assert after.grounded and after.text == "No, we only rent kayaks."
