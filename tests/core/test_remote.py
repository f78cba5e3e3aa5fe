"""OpenAICompatEngine against a real OpenAI-compatible server on loopback: llama.cpp's server
(the xllamacpp wheel) running the embedded GGUF."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from core.bot import Bot
from core.events import LABELS, ChatMessage, ConversationKey, IncomingMessage
from core.memory import Memory
from core.prompts import label_scores
from core.remote import OpenAICompatEngine, top_ids


@pytest.fixture(scope="session")
async def remote(llama_server: str, base_settings: Settings) -> AsyncIterator[OpenAICompatEngine]:
    """Label scoring (`sentiment.head = ""`)."""
    model = dataclasses.replace(base_settings.model, engine="openai", base_url=llama_server, max_new_tokens=48)
    engine = await OpenAICompatEngine.connect(model, dataclasses.replace(base_settings.sentiment, head=""))
    yield engine
    await engine.aclose()


TEXTS = {
    "negative": ["This is terrible. My order is broken and nobody answers me. I am furious!", "太糟糕了，我非常生气！"],
    "positive": [
        "Thank you so much, this is wonderful and works perfectly! I love it.",
        "太好了，非常满意，谢谢你们！",
    ],
    "neutral": ["Can I change the delivery address of my order?", "What time do you open on Saturday?"],
}


async def test_the_head_reads_the_servers_log_probabilities_by_token_id(
    llama_server: str, base_settings: Settings
) -> None:
    """(#28) The scale-out engine reads the same mood head as the engine in process: the embedded
    GGUF's shipped llama.cpp head, on the top 2,000 log-probabilities (with token ids) that llama.cpp's
    server returns for the same prompt ids — neutral included, which label scoring never sees."""
    model = dataclasses.replace(base_settings.model, engine="openai", base_url=llama_server)
    engine = await OpenAICompatEngine.connect(model, base_settings.sentiment)
    try:
        assert engine.head is not None
        for label, texts in TEXTS.items():
            moods = await engine.classify(texts)
            assert [m.label for m in moods] == [label] * len(texts) and all(0 < m.score < 1 for m in moods)
        assert engine.head is not None  # read by the head throughout
    finally:
        await engine.aclose()


@pytest.mark.parametrize(
    "logprobs",
    [
        {"content": [{"top_logprobs": [{"id": 7, "token": " a", "logprob": -0.5}, {"id": 9, "logprob": -2}]}]},
        {"top_logprobs": [{"token_id:7": -0.5, "token_id:9": -2.0}]},  # vLLM, return_tokens_as_token_ids
    ],
)  # fmt: skip
def test_token_ids_are_read_from_either_shape(logprobs: dict[str, Any]) -> None:
    assert top_ids(logprobs) == {7: -0.5, 9: -2.0}
    assert top_ids({"top_logprobs": [{" a": -0.5}]}) == {}  # no ids: the head cannot be read, label scoring is


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


async def test_eval_measures_the_mood_a_running_server_gives(llama_server: str, base_settings: Settings) -> None:
    """(#28) `tonebot eval` works against any engine: over the server, the head and label scoring on
    the same rows, so a scaled deployment can measure its own mood."""
    from bot.tools import evaluate

    model = dataclasses.replace(base_settings.model, engine="openai", base_url=llama_server)
    rows = Path(__file__).resolve().parents[2] / "core" / "local" / "training" / "customer_service.jsonl"
    report = await evaluate.run(dataclasses.replace(base_settings, model=model), rows, 30, "test", False)
    assert report["engine"] == "openai" and report["method"] == "mood head" and report["rows"] == 30
    [labels] = report["baselines"]
    assert labels["method"] == "label-token scoring" and report["macro_f1"] > labels["macro_f1"]
    assert report["per_class"]["neutral"]["recall"] > labels["per_class"]["neutral"]["recall"]
