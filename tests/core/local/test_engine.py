"""The engine on the real embedded model: sentiment by label-token scoring, and streamed replies."""

import asyncio
import dataclasses
import math
import threading

import pytest

from core.errors import Busy
from core.events import LABELS, ChatMessage
from core.local import internals
from core.local.engine import TransformersEngine
from core.local.worker import ModelWorker
from tests.auxil.concurrent import replies_at_once

NEGATIVE = [
    "This is terrible. My order is broken and nobody answers me. I am furious!",
    "太糟糕了，我非常生气，完全不能用！",
]
POSITIVE = ["Thank you so much, this is wonderful and works perfectly! I love it.", "太好了，非常满意，谢谢你们！"]


async def test_probabilities_cover_the_three_labels_and_sum_to_one(engine: TransformersEngine) -> None:
    moods = await engine.classify(["The meeting is at 3 pm.", "I love it!", "I hate it!"])
    assert len(moods) == 3
    for mood in moods:
        assert set(mood.scores) == set(LABELS)
        assert math.isclose(sum(mood.scores.values()), 1.0, abs_tol=1e-4)
        assert all(0.0 <= p <= 1.0 for p in mood.scores.values())
        assert mood.label == max(mood.scores, key=mood.scores.__getitem__)


@pytest.mark.parametrize("text", NEGATIVE)
async def test_clearly_negative_messages_in_english_and_chinese(engine: TransformersEngine, text: str) -> None:
    [mood] = await engine.classify([text])
    assert mood.label == "negative", mood


@pytest.mark.parametrize("text", POSITIVE)
async def test_clearly_positive_messages_in_english_and_chinese(engine: TransformersEngine, text: str) -> None:
    [mood] = await engine.classify([text])
    assert mood.label == "positive", mood


async def test_prefix_cache_gives_the_cold_forward_pass_answer(engine: TransformersEngine) -> None:
    texts = [*NEGATIVE, *POSITIVE, "ok"]
    cached = await engine.worker.run(
        lambda: engine.reader.probabilities(texts, engine.reader.method, use_prefix_cache=True)
    )
    cold = await engine.worker.run(
        lambda: engine.reader.probabilities(texts, engine.reader.method, use_prefix_cache=False)
    )
    assert cached.argmax(-1).tolist() == cold.argmax(-1).tolist()
    assert (cached - cold).abs().max().item() < 0.05


async def test_a_batch_scores_like_one_message_at_a_time(engine: TransformersEngine) -> None:
    texts = ["short", "a much longer message that needs padding in the batch, " * 3, POSITIVE[1]]
    batched = await engine.worker.run(lambda: engine.reader.probabilities(texts, engine.reader.method))
    single = [
        await engine.worker.run(lambda t=t: engine.reader.probabilities([t], engine.reader.method)[0]) for t in texts
    ]
    for row, alone in zip(batched, single, strict=True):
        assert (row - alone).abs().max().item() < 0.05


async def test_reply_streams_text_in_several_chunks(engine: TransformersEngine) -> None:
    chat = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Name three colours.")]
    chunks = [chunk async for chunk in engine.reply(chat)]
    assert len(chunks) > 1
    assert "".join(chunks).strip()


def test_context_keeps_the_system_prompt_and_last_message_and_drops_the_oldest_turns(
    engine: TransformersEngine,
) -> None:
    history = []
    for i in range(200):
        history += [ChatMessage("user", f"old question number {i} " * 5), ChatMessage("assistant", f"answer {i} " * 5)]
    chat = [ChatMessage("system", "SYSTEM-PROMPT"), *history, ChatMessage("user", "the newest question")]
    ids = engine.prompt_ids(chat)
    budget = engine.settings.context_tokens - engine.settings.max_new_tokens
    text = engine.tokenizer.decode(ids)
    assert len(ids) <= budget
    assert "SYSTEM-PROMPT" in text and "the newest question" in text
    assert "old question number 199" in text and "old question number 0 " not in text


async def test_concurrent_replies_decode_together_and_each_answers_its_own_chat(engine: TransformersEngine) -> None:
    questions = ["Name three colours.", "What is the capital of France?", "Say hello in Spanish.", "Count to five."]
    chats = [[ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", q)] for q in questions]
    replies, streamed_before_first_end = await replies_at_once(engine, chats)
    assert all(r.strip() for r in replies) and len(set(replies)) == len(replies)
    # every stream had produced text before the first one finished: they shared decoding steps
    assert streamed_before_first_end == set(range(len(chats)))
    assert not engine._replies


async def test_a_reply_abandoned_midway_is_cancelled_and_the_next_one_works(engine: TransformersEngine) -> None:
    chat = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Tell me a long story.")]
    stream = engine.reply(chat)
    await anext(stream)
    await stream.aclose()
    assert not engine._replies
    assert "".join([c async for c in engine.reply(chat)]).strip()


async def test_sentiment_while_a_reply_is_decoding_is_the_same_as_alone(engine: TransformersEngine) -> None:
    texts = [*NEGATIVE, *POSITIVE, "ok"]
    alone = await engine.worker.run(lambda: engine.reader.probabilities(texts, engine.reader.method))
    chat = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Tell me a long story.")]
    stream = engine.reply(chat)
    await anext(stream)  # the batcher is mid-reply now
    during = await engine.worker.run(lambda: engine.reader.probabilities(texts, engine.reader.method))
    await stream.aclose()
    assert (during - alone).abs().max().item() < 0.02


async def test_model_jobs_run_on_the_batchers_thread_and_a_failing_one_fails_only_its_caller(
    engine: TransformersEngine,
) -> None:
    # one thread for every forward pass: a second thread with an OpenMP pool halves the speed of both
    assert await engine.worker.run(threading.current_thread) is internals.thread(engine.batcher)

    def fail() -> None:
        raise RuntimeError("job failed")

    with pytest.raises(RuntimeError, match="job failed"):
        await engine.worker.run(fail)
    [mood] = await engine.classify([POSITIVE[0]])
    assert mood.label == "positive"


async def test_a_full_model_queue_answers_busy_at_once_and_loses_no_queued_job(engine: TransformersEngine) -> None:
    worker = ModelWorker(engine.batcher, max_queue=1)  # a second, tiny queue on the same batcher thread
    started, release = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait(30)

    holding = asyncio.ensure_future(worker.run(hold))
    assert await asyncio.to_thread(started.wait, 30)  # the batcher's thread is busy with it now
    queued = asyncio.ensure_future(worker.run(lambda: 42))
    await asyncio.sleep(0.1)
    with pytest.raises(Busy):
        await worker.run(lambda: 0)
    release.set()
    assert await holding is True
    assert await queued == 42


async def test_replies_beyond_the_limit_are_refused_as_busy(engine: TransformersEngine) -> None:
    chat = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Hi")]
    saved = engine.settings
    engine.settings = dataclasses.replace(saved, max_queue=1)
    try:
        first = engine.reply(chat)
        await anext(first)
        with pytest.raises(Busy):
            await anext(engine.reply(chat))
        await first.aclose()
    finally:
        engine.settings = saved


async def test_concurrent_classify_calls_are_batched_and_each_gets_its_own_answer(engine: TransformersEngine) -> None:
    texts = [*NEGATIVE, *POSITIVE] * 3
    alone = [m.label for m in [(await engine.classify([t]))[0] for t in texts]]
    together = await asyncio.gather(*(engine.classify([t]) for t in texts))
    assert [moods[0].label for moods in together] == alone
    assert [m.label for m in await engine.classify(texts)] == alone


async def test_a_text_the_tokenizer_rejects_fails_only_its_own_caller(engine: TransformersEngine) -> None:
    """Regression (#14 B.6): one bad text failed the whole batch it shared with other users' texts."""
    results = await asyncio.gather(
        engine.classify(["Thanks, that fixed it!"]),
        engine.classify(["broken \ud800"]),
        engine.classify(["This is terrible, I want a refund."]),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    assert [r[0].label for r in (results[0], results[2])] == ["positive", "negative"]  # type: ignore[index]


def test_one_message_costs_the_mood_pass_at_most_max_text_tokens(engine: TransformersEngine) -> None:
    """Regression (#14 B.5): 4,000 rare CJK characters (~16,000 tokens) held the model for minutes."""
    reader, cap = engine.reader, engine.reader.max_tokens
    ids, _ = reader._encode(["𠀀𠀁𠀂𠀃" * 1000, "short"])
    suffix = len(reader.tokenizer.encode(reader._suffix, add_special_tokens=False))
    assert ids.shape[1] <= cap + suffix < 1000


def test_openmp_waits_passively_unless_the_user_chose_otherwise() -> None:
    """Regression (#14 B.8): spinning OpenMP threads made a reply 2x+ slower beside one busy process."""
    import os
    import subprocess
    import sys

    code = "import os, core.local.engine; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    chosen = subprocess.run(
        [sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True
    )
    assert (default.stdout.strip(), chosen.stdout.strip()) == ("PASSIVE", "ACTIVE")


async def test_an_abandoned_reply_leaves_no_result_handler_behind(engine: TransformersEngine) -> None:
    """Regression (#25, low): every cancelled reply leaked its result handler in the batcher."""
    router = engine.batcher.output_router
    before = set(router.result_handlers)
    chat = [ChatMessage("system", "You are helpful."), ChatMessage("user", "Tell me a story about the sea.")]
    stream = engine.reply(chat)
    await anext(stream)
    await stream.aclose()
    await asyncio.sleep(0.2)
    assert set(router.result_handlers) <= before
