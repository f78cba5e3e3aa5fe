"""OpenAICompatEngine against a real OpenAI-compatible server on loopback: llama.cpp's server
(the xllamacpp wheel) running the embedded GGUF."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.config import Settings
from core.bot import Bot
from core.events import LABELS, ChatMessage, ConversationKey, IncomingMessage
from core.memory import Memory
from core.prompts import label_scores
from core.remote import OpenAICompatEngine


@pytest.fixture(scope="session")
async def remote(llama_server: str, base_settings: Settings) -> AsyncIterator[OpenAICompatEngine]:
    model = dataclasses.replace(base_settings.model, engine="openai", base_url=llama_server, max_new_tokens=48)
    engine = await OpenAICompatEngine.connect(model, base_settings.sentiment)
    yield engine
    await engine.aclose()


async def test_sentiment_comes_from_label_token_logprobs(remote: OpenAICompatEngine) -> None:
    moods = await remote.classify(["I hate this, it is broken and nobody helps me!", "Thank you, I love it!", "ok"])
    for mood in moods:
        assert set(mood.scores) == set(LABELS)
        assert math.isclose(sum(mood.scores.values()), 1.0, abs_tol=1e-6)
        assert 0 < max(mood.scores.values()) < 1  # real probabilities, not the one-word fallback
    assert moods[0].scores["negative"] > moods[1].scores["negative"]
    assert moods[1].scores["positive"] > moods[0].scores["positive"]


async def test_reply_streams_from_chat_completions(remote: OpenAICompatEngine) -> None:
    chat = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Name three colours.")]
    chunks = [chunk async for chunk in remote.reply(chat)]
    assert len(chunks) > 1 and "".join(chunks).strip()


async def test_the_bot_runs_on_the_remote_engine_end_to_end(remote: OpenAICompatEngine, memory: Memory,
                                                            settings: Settings) -> None:  # fmt: skip
    bot = Bot(remote, memory, settings.prompts, settings.memory)
    key = ConversationKey("web", "remote-1")
    first = await bot.handle(IncomingMessage(key, "u", "My name is Ada. Please remember it.", event_id="r1"))
    second = await bot.handle(IncomingMessage(key, "u", "What is my name?", event_id="r2"))
    assert first.mood is not None and first.text and second.text and not first.failed and not second.failed
    assert [m.role for m in await memory.messages(key)] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    "logprobs",
    [
        {"top_logprobs": [{" Negative": -0.5, " Positive": -1.5, " Neutral": -2.0, " The": -3.0}]},  # OpenAI / vLLM
        {"content": [{"token": " Negative", "logprob": -0.5, "top_logprobs": [  # llama.cpp
            {"token": " Negative", "logprob": -0.5}, {"token": " Positive", "logprob": -1.5},
            {"token": " Neutral", "logprob": -2.0}, {"token": " n", "logprob": -2.5}]}]},
    ],
)  # fmt: skip
def test_label_scores_read_both_logprob_shapes(logprobs: dict[str, Any]) -> None:
    scores = label_scores(logprobs)
    assert scores is not None and max(scores, key=scores.__getitem__) == "negative"
    total = math.exp(-0.5) + math.exp(-1.5) + math.exp(-2.0)  # " n" and " The" name no single label
    assert math.isclose(scores["negative"], math.exp(-0.5) / total)


def test_no_label_among_the_logprobs_means_fallback() -> None:
    assert label_scores({"top_logprobs": [{" The": -0.1}]}) is None
    assert label_scores({}) is None
