"""A Hugging Face causal LM in this process, on the CPU: the engine protocol (core/engine.py)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from core import loading, metrics
from core.engine import Health
from core.errors import Busy, EngineError
from core.events import ChatMessage, Mood
from core.local import _omp, internals  # noqa: F401  (_omp: before torch loads OpenMP)
from core.local.sentiment import MoodReader
from core.local.worker import ModelWorker, in_own_thread, settle
from core.prompts import fit_chat
from core.settings import ModelSettings, SentimentSettings

log = logging.getLogger(__name__)


class TransformersEngine:
    """Replies run in Transformers' continuous batcher, so conversations that answer at the same time
    share each decoding step instead of waiting in line; sentiment passes (queued texts scored
    together) run on the batcher's thread between its steps, so every forward pass is on one
    thread (core/local/worker.py says why) and none can see another half-done.
    """

    def __init__(
        self, model: Any, tokenizer: Any, settings: ModelSettings, sentiment: SentimentSettings, name: str = ""
    ) -> None:
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        self.source_name = name or getattr(model, "name_or_path", "")
        self.reader = MoodReader(model, tokenizer, sentiment, self.source_name, heads=settings.cache_dir / "heads")
        self._pending: list[tuple[str, asyncio.Future[Mood]]] = []
        self._pending_lock = threading.Lock()
        self.batcher = internals.start(model, tokenizer, settings)
        self.worker = ModelWorker(self.batcher, settings.max_queue)  # sentiment runs on the batcher's thread
        self._replies: set[str] = set()
        self._request_ids = itertools.count()
        metrics.QUEUE_DEPTH.set_function(lambda: len(self._pending) + len(self._replies))

    @classmethod
    async def load(cls, settings: ModelSettings, sentiment: SentimentSettings) -> TransformersEngine:
        """Find and load the model off the event loop, then warm it up."""
        import torch

        if settings.threads:
            torch.set_num_threads(settings.threads)
        started = time.perf_counter()
        source = loading.resolve(settings.id, settings.gguf_file, settings.fallback_to_embedded)
        dtype = loading.pick_dtype(settings.dtype)
        engine = await in_own_thread(
            lambda: cls(*loading.load(source, dtype, settings.cache_dir), settings, sentiment, source.name)
        )
        await engine.classify(["warm-up"])  # on the batcher's thread, like every pass after it
        reader = engine.reader
        mood = f"head at layer {reader.head.identity.layer}/{reader.depth}" if reader.head else "label scoring"
        log.info("model %s ready in %.1fs (%s, mood: %s)", source.name, time.perf_counter() - started, dtype, mood)
        return engine

    def health(self) -> Health:
        if problem := internals.failure(self.batcher):
            return Health("dead", problem)
        queued = max(len(self._replies), self.worker.waiting)
        return Health("ready", queued=queued, capacity=self.settings.max_queue)

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        """Texts wait in one shared list; the worker scores everything queued by then in one go."""
        loop = asyncio.get_running_loop()
        waiting = [(text, loop.create_future()) for text in texts]
        with self._pending_lock:
            self._pending += waiting
        try:
            await self.worker.run(self._score_pending)  # may find ours already scored by an earlier job
        except BaseException:
            with self._pending_lock:  # not queued after all: take ours back out
                self._pending = [item for item in self._pending if item not in waiting]
            raise
        return list(await asyncio.gather(*(future for _, future in waiting)))

    def _score_pending(self) -> None:
        """On the batcher's thread: batches of similar length, so little is spent on padding."""
        with self._pending_lock:
            pending, self._pending = sorted(self._pending, key=lambda item: len(item[0])), []
        step = self.settings.classify_batch
        for i in range(0, len(pending), step):
            chunk = pending[i : i + step]
            outcomes = self._classify([text for text, _ in chunk])
            for (_, future), outcome in zip(chunk, outcomes, strict=True):
                future.get_loop().call_soon_threadsafe(settle, future, outcome, isinstance(outcome, Exception))

    def _classify(self, texts: list[str]) -> list[Any]:
        """Moods, or the exception for each text: a batch that fails is read again one text at a
        time, so a text the model cannot take fails its own caller and nobody else in the batch."""
        try:
            return list(self.reader.classify(texts))
        except Exception as exc:
            if len(texts) == 1:
                return [exc]
            log.warning("a sentiment batch failed (%s); reading its %d texts one by one", exc, len(texts))
            return [outcome for text in texts for outcome in self._classify([text])]

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Stream a reply from the continuous batcher; concurrent conversations decode in one batch."""
        if len(self._replies) >= self.settings.max_queue:
            raise Busy()
        request_id = f"reply-{next(self._request_ids)}"
        outputs: asyncio.Queue[Any] = asyncio.Queue()
        # register before submitting, so even the first token reaches this stream
        self.batcher.register_result_handler(request_id, outputs.put_nowait)
        self._replies.add(request_id)
        finished = False
        try:
            if self.batcher.add_request(self.prompt_ids(messages), request_id, self.settings.max_new_tokens,
                                        streaming=True) is None:  # fmt: skip
                raise EngineError("the model's generation loop is not running")
            sent = ""
            while not finished:
                output = await outputs.get()
                if output.error:
                    raise EngineError(f"generation failed: {output.error}")
                finished = output.is_finished()
                text = self.tokenizer.decode(output.generated_tokens, skip_special_tokens=True)
                if len(text) > len(sent) and (finished or not text.endswith("\ufffd")):  # no half characters
                    yield text[len(sent) :]
                    sent = text
        finally:
            self._replies.discard(request_id)
            if not finished:  # the listener went away: free the slot and the KV blocks, and its handler
                self.batcher.cancel_request(request_id)
                internals.drop_result_handler(self.batcher, request_id)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.batcher.stop, True, 30)

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of the chat, trimmed to the context budget."""
        return fit_chat(self.tokenizer, messages, self.settings.context_tokens - self.settings.max_new_tokens)[0]
