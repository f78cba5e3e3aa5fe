"""The engine: one model, two jobs (read the mood, write the reply), behind a small protocol."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from core import loading
from core.events import ChatMessage, Mood
from core.settings import ModelSettings, SentimentSettings
from core.worker import ModelWorker

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What the core needs from a language model."""

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        """The mood of each text: a label and probabilities over negative / neutral / positive."""
        ...

    def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Stream the assistant's answer to a chat, trimmed to the engine's context budget."""
        ...

    async def aclose(self) -> None:
        """Release the model and its worker."""
        ...


class TransformersEngine:
    """A Hugging Face causal LM in this process, on the CPU, run by one worker thread."""

    def __init__(self, model: Any, tokenizer: Any, settings: ModelSettings, sentiment: SentimentSettings) -> None:
        from core.sentiment import LabelScorer

        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.scorer = LabelScorer(model, tokenizer, sentiment)
        self.worker = ModelWorker(settings.max_queue)
        self._pending: list[tuple[str, asyncio.Future[Mood]]] = []
        self._pending_lock = threading.Lock()

    @classmethod
    async def load(cls, settings: ModelSettings, sentiment: SentimentSettings) -> TransformersEngine:
        """Find, load and warm up the model, off the event loop."""
        return await asyncio.to_thread(cls.load_sync, settings, sentiment)

    @classmethod
    def load_sync(cls, settings: ModelSettings, sentiment: SentimentSettings) -> TransformersEngine:
        import torch

        if settings.threads:
            torch.set_num_threads(settings.threads)
        started = time.perf_counter()
        source = loading.resolve(settings.id, settings.gguf_file, settings.fallback_to_embedded)
        dtype = loading.pick_dtype(settings.dtype)
        model, tokenizer = loading.load(source, dtype, settings.cache_dir)
        engine = cls(model, tokenizer, settings, sentiment)
        engine.scorer.classify(["warm-up"])
        log.info("model %s ready in %.1fs (%s)", source.name, time.perf_counter() - started, dtype)
        return engine

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        """Texts wait in one shared list; the worker scores everything queued by then in one go."""
        loop = asyncio.get_running_loop()
        waiting = [(text, loop.create_future()) for text in texts]
        with self._pending_lock:
            self._pending += waiting
        await self.worker.run(self._score_pending)  # may find ours already scored by an earlier job
        return list(await asyncio.gather(*(future for _, future in waiting)))

    def _score_pending(self) -> None:
        """On the worker thread: batches of similar length, so little is spent on padding."""
        with self._pending_lock:
            pending, self._pending = sorted(self._pending, key=lambda item: len(item[0])), []
        step = self.settings.classify_batch
        for i in range(0, len(pending), step):
            chunk = pending[i : i + step]
            try:
                outcomes: list[Any] = list(self.scorer.classify([text for text, _ in chunk]))
            except Exception as exc:  # handed to every waiting caller
                outcomes = [exc] * len(chunk)
            for (_, future), outcome in zip(chunk, outcomes, strict=True):
                future.get_loop().call_soon_threadsafe(_settle, future, outcome)

    def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        return self.worker.stream(lambda emit, stop: self.generate(messages, emit, stop))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.worker.close)

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> Any:
        """Token ids of the chat, dropping the oldest history turns until it fits the budget."""
        budget = self.settings.context_tokens - self.settings.max_new_tokens
        system, *history, last = messages
        while True:
            chat = [{"role": m.role, "content": m.content} for m in (system, *history, last)]
            ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            if ids.shape[1] <= budget or not history:
                return ids[:, -budget:]
            history = history[2:] if len(history) > 1 and history[0].role == "user" else history[1:]

    def generate(self, messages: Sequence[ChatMessage], emit: Callable[[str], None], stop: threading.Event) -> None:
        """Blocking generation, emitting text as it is decoded; runs on the worker thread."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        class Emitter(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    emit(text)

        class Stopped(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        s = self.settings
        ids = self.prompt_ids(messages)
        sampling = (
            {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p}
            if s.temperature
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=s.max_new_tokens,
                repetition_penalty=s.repetition_penalty,
                streamer=Emitter(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                stopping_criteria=StoppingCriteriaList([Stopped()]),
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                **sampling,
            )


def _settle(future: asyncio.Future[Mood], outcome: Mood | BaseException) -> None:
    if future.done():  # the caller went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def open_engine(settings: ModelSettings, sentiment: SentimentSettings) -> Engine:
    """The factory: the in-process Transformers engine (other engines plug in here)."""
    return await TransformersEngine.load(settings, sentiment)
