"""Answers from the knowledge base through the real pipeline (the embedded model reads the mood):
a curated answer word for word, an unanswerable question answered honestly with a person offered,
an upset customer with no answer handed to a person (`no_answer`), and the sources shown on every
surface — /v1/chat and the stream's `done` event, Telegram and Slack as plain text under the answer."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.web import create_app
from bot.config import Settings
from core.bot import Bot
from core.events import ConversationKey, IncomingMessage
from core.knowledge import Knowledge
from core.knowledge.retrieval import Embed
from core.knowledge.store import KnowledgeStore
from core.memory import Memory
from tests.auxil.fake_telegram import FakeBotAPI
from tests.auxil.scripted import MILD_NEGATIVE, ScriptedEngine
from tests.auxil.servers import eventually, serve_asgi
from tests.auxil.spy import SpyEngine
from tests.bot.adapters.test_slack_e2e import CHANNEL, THREAD, envelope, post_event, running_slack
from tests.bot.adapters.test_telegram_e2e import ALICE, ME, TOKEN, private, telegram_settings

KB = Path(__file__).resolve().parents[1] / "data" / "kb"
DOG = "Yes, dogs under 20 kg may ride in a tandem kayak with a dog life jacket, which we lend for free."


@pytest.fixture
async def kb(memory: Memory, embed: Embed, settings: Settings) -> Knowledge:
    knowledge = Knowledge(KnowledgeStore(memory.db), embed, settings.knowledge)
    await knowledge.add([KB / "articles", KB / "faq.jsonl"])
    return knowledge


@pytest.fixture
def kbbot(spy: SpyEngine, memory: Memory, settings: Settings, kb: Knowledge) -> Bot:
    return Bot(spy, memory, settings.prompts, settings.memory, settings.escalation, knowledge=kb)


async def test_the_web_api_answers_from_the_knowledge_base_with_sources(kbbot: Bot, spy: SpyEngine) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(kbbot)), base_url="http://t") as api:
        curated = (
            await api.post("/v1/chat", json={"conversation_id": "k1", "text": "Can my dog come on the kayak?"})
        ).json()
        rods = {"conversation_id": "k2", "text": "Do you sell fishing rods in your shop?"}
        unknown = (await api.post("/v1/chat", json=rods)).json()
        chitchat = (await api.post("/v1/chat", json={"conversation_id": "k3", "text": "Lovely weather today."})).json()
        async with api.stream("POST", "/v1/chat/stream", json={"conversation_id": "k4",
                              "text": "How much is the late fee after 7 pm?"}) as response:  # fmt: skip
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert curated["reply"].endswith(DOG) and curated["grounded"]
    assert curated["sources"] == [{"id": "faq-dogs", "title": "Can I bring my dog on a kayak?",
                                   "url": "https://paddle.example/faq#dogs"}]  # fmt: skip
    assert not unknown["grounded"] and unknown["sources"] == [] and "person" in unknown["reply"]
    assert "$" not in unknown["reply"]  # nothing invented
    assert not chitchat["grounded"] and chitchat["reply"]  # small talk goes to the model, as before
    done = json.loads(lines[-1][6:])
    assert done["grounded"] and "$18" in done["reply"] and done["sources"][0]["id"] == "returns.md"
    assert len(spy.chats) == 1  # only the small talk reached the chat model


async def test_an_upset_customer_with_no_answer_is_handed_to_a_person(
    scripted: ScriptedEngine, memory: Memory, settings: Settings, kb: Knowledge
) -> None:
    text = "This is ridiculous, do you sell fishing rods or not?!"
    scripted.moods[text] = MILD_NEGATIVE  # negative, below escalation.high_negative: the knowledge decides
    bot = Bot(scripted, memory, settings.prompts, settings.memory, settings.escalation, knowledge=kb)
    reply = await bot.handle(IncomingMessage(ConversationKey("web", "angry"), user_id="u", text=text))
    [case] = await bot.handoff.cases()
    assert reply.escalated and case.escalation.reason == "no_answer" and not reply.grounded
    assert "person" in reply.text and scripted.chats == []


async def test_telegram_and_slack_show_the_sources_under_the_answer(kbbot: Bot) -> None:
    api = FakeBotAPI(me=ME)
    async with serve_asgi(api.app()) as url, TelegramAdapter(kbbot, telegram_settings(url),
                                                             dict(TELEGRAM_BOT_TOKEN=TOKEN)):  # fmt: skip
        api.push(private("can i bring my dog on a kayak?", message_id=1))
        [shown] = await eventually(lambda: [m for m in api.sent_to(ALICE) if "Sources:" in m["text"]],
                                   what="the answer with its sources")  # fmt: skip
    assert (
        DOG in shown["text"] and "• Can I bring my dog on a kayak? — https://paddle.example/faq#dogs" in shown["text"]
    )
    assert "parse_mode" not in shown or not shown["parse_mode"]  # plain text: a title cannot inject markup

    async with running_slack(kbbot) as (slack, _, client):
        await post_event(
            client, envelope("channel_mention.json", text="<@U0BOT00001> what is the late fee after 7 pm?")
        )
        [answer] = await eventually(lambda: [m for m in slack.in_thread(CHANNEL, THREAD) if "Sources:" in m["text"]],
                                    what="the Slack answer with its sources")  # fmt: skip
    assert "$18" in answer["text"] and "• Returning a kayak" in answer["text"]
