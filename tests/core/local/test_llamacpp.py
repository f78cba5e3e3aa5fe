"""The llama.cpp engine (what `tonebot serve` runs for a .gguf file) on the real embedded model: the
shipped mood head read from next-token log-probabilities, label scoring without it, streamed and
concurrent replies, a reply abandoned midway, and no torch in the process."""

import asyncio
import dataclasses
import math
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from bot.app import engine_kind
from bot.config import Settings
from bot.tools.evaluate import evaluate
from core.events import LABELS, ChatMessage
from core.local.llamacpp import LlamaCppEngine
from tests.auxil.concurrent import replies_at_once

NEGATIVE = [
    "This is terrible. My order is broken and nobody answers me. I am furious!",
    "太糟糕了，我非常生气，完全不能用！",
]
POSITIVE = ["Thank you so much, this is wonderful and works perfectly! I love it.", "太好了，非常满意，谢谢你们！"]
NEUTRAL = ["Can I change the delivery address of my order?", "请问你们周日几点开门？"]
CHAT = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Name three colours.")]


@pytest.fixture(scope="module")
async def llama(base_settings: Settings) -> AsyncIterator[LlamaCppEngine]:
    engine = await LlamaCppEngine.load(base_settings.model, base_settings.sentiment)
    yield engine
    await engine.aclose()


def test_auto_serves_a_gguf_file_with_llamacpp(base_settings: Settings) -> None:
    assert engine_kind(base_settings.model) == "llamacpp"
    assert engine_kind(dataclasses.replace(base_settings.model, engine="transformers")) == "transformers"


async def test_the_shipped_head_is_found_and_reads_the_three_moods(llama: LlamaCppEngine) -> None:
    assert llama.head is not None and llama.head.identity.pooling == "logprobs"
    assert llama.head.tokens is not None and len(llama.head.tokens) == llama.head.weight.shape[1]
    moods = await llama.classify([*NEGATIVE, *POSITIVE, *NEUTRAL])
    for mood in moods:
        assert set(mood.scores) == set(LABELS) and math.isclose(sum(mood.scores.values()), 1.0, abs_tol=1e-4)
    assert [m.label for m in moods] == ["negative"] * 2 + ["positive"] * 2 + ["neutral"] * 2, moods


async def test_a_batch_reads_like_one_message_at_a_time(llama: LlamaCppEngine) -> None:
    texts = [NEGATIVE[0], POSITIVE[1], "a much longer message about an order and a delivery, " * 4]
    together = await llama.classify(texts)
    alone = [(await llama.classify([text]))[0] for text in texts]
    for a, b in zip(together, alone, strict=True):
        assert max(abs(a.scores[k] - b.scores[k]) for k in LABELS) < 0.05


async def test_label_scoring_without_a_head(base_settings: Settings) -> None:
    sentiment = dataclasses.replace(base_settings.sentiment, head="")
    engine = await LlamaCppEngine.load(base_settings.model, sentiment)
    try:
        assert engine.head is None
        [negative, positive] = await engine.classify([NEGATIVE[0], POSITIVE[0]])
    finally:
        await engine.aclose()
    assert negative.label == "negative" and positive.label == "positive"
    assert math.isclose(sum(negative.scores.values()), 1.0, abs_tol=1e-4)


async def test_replies_stream_concurrently_and_each_answers_its_own_chat(llama: LlamaCppEngine) -> None:
    questions = ["Name three colours.", "What is the capital of France?", "Say hello in Spanish."]
    chats = [[CHAT[0], ChatMessage("user", q)] for q in questions]
    replies, streamed_before_first_end = await replies_at_once(llama, chats)
    assert all(r.strip() for r in replies) and len(set(replies)) == len(replies)
    assert streamed_before_first_end == set(range(len(chats)))
    assert llama.health().queued == 0


async def test_a_reply_abandoned_midway_stops_and_the_next_one_works(llama: LlamaCppEngine) -> None:
    stream = llama.reply([CHAT[0], ChatMessage("user", "Tell me a long story.")])
    await anext(stream)
    await stream.aclose()
    assert "".join([c async for c in llama.reply(CHAT)]).strip()
    assert llama.health().queued == 0


async def test_long_replies_at_once_that_overflow_the_kv_cache_wait_for_room_instead_of_failing(
    base_settings: Settings,
) -> None:
    # room for one 512-token context (and the mood passes): four ~450-token prompts cannot all run at once
    model = dataclasses.replace(base_settings.model, context_tokens=512, kv_cache_tokens=1, max_new_tokens=8)
    engine = await LlamaCppEngine.load(model, base_settings.sentiment)
    chats = [[CHAT[0], ChatMessage("user", f"Story {n}: " + "the ship sailed over the sea and " * 60 + "Why?")]
             for n in range(4)]  # fmt: skip

    async def answer(chat: list[ChatMessage]) -> str:
        return "".join([chunk async for chunk in engine.reply(chat)])

    try:
        replies = await asyncio.gather(*(answer(chat) for chat in chats))
    finally:
        await engine.aclose()
    assert all(reply.strip() for reply in replies)


async def test_eval_reads_the_head_and_label_scoring_on_llamacpp(
    llama: LlamaCppEngine, base_settings: Settings
) -> None:
    rows = [{"text": NEGATIVE[0], "label": "negative"}, {"text": POSITIVE[0], "label": "positive"}]
    report = await evaluate(llama, rows, vs_generate=False, settings=base_settings)
    assert report["method"] == "mood head" and report["accuracy"] == 1.0
    assert [b["method"] for b in report["baselines"]] == ["label-token scoring"]
    assert report["p50_ms"] > 0 and report["baselines"][0]["rows"] == 2


def test_serving_a_gguf_file_loads_no_torch() -> None:
    code = (
        "import asyncio, sys\n"
        "from bot.config import load_settings\n"
        "from bot.app import open_engine\n"
        "s = load_settings(environ={'TONEBOT_MODEL__ID': 'embedded'})\n"
        "async def main():\n"
        "    e = await open_engine(s.model, s.sentiment)\n"
        "    [m] = await e.classify(['I love it'])\n"
        "    await e.aclose()\n"
        "    print(type(e).__name__, m.label, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["LlamaCppEngine", "positive", "False", "False"]


async def test_a_queue_of_one_still_starts(base_settings: Settings) -> None:
    """Regression (#25, low): model.max_queue = 1 is valid, but the warm-up classified two texts at
    once through the customers' admission and the server could not start."""
    model = dataclasses.replace(base_settings.model, max_queue=1)
    engine = await LlamaCppEngine.load(model, base_settings.sentiment)
    try:
        [mood] = await engine.classify(["Thanks, that solved it!"])
        assert mood.label in LABELS
    finally:
        await engine.aclose()
