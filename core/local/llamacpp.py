"""A GGUF file in llama.cpp, in this process (the xllamacpp wheel): the engine protocol
(core/engine.py) at llama.cpp's own speed, with no torch or Transformers loaded.

llama.cpp runs its own server loop on its own threads: slots with continuous batching, a prompt
cache per slot (a conversation's next turn, or the sentiment prefix, is not computed again), the
weights memory-mapped from the file. Replies stream from its completion handler. The mood is read
from the same handler, one token "generated" after the sentiment prompt over its cached prefix: a
mood head (fitted by `tonebot train-head` with this engine) reads the log-probabilities of a fixed
set of tokens among the top `TOP_FEATURES` — a linear function of the final hidden state, so it
is a linear read-out of that state — or, for a model without a head, label-token scoring reads
the labels' probabilities. (llama.cpp's embeddings handler gives the state itself but recomputes
the whole prompt, examples included, every time: ~7x slower here.) No early exit: llama.cpp runs
every layer. `max_concurrent_replies` slots answer; `SENTIMENT_SLOTS` more stay free for mood
passes, so a mood is never queued behind replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import multiprocessing
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core import loading, metrics
from core.engine import Health
from core.errors import Busy, ConfigError, EngineError
from core.events import LABELS, ChatMessage, Mood
from core.local import head, requantize
from core.local.chat_tokenizer import ChatTokenizer
from core.local.head import Identity
from core.prompts import capped, fit_chat, label_scores, sentiment_prompt
from core.settings import ModelSettings, SentimentSettings

log = logging.getLogger(__name__)
SENTIMENT_SLOTS = 2
TOP_LABELS = 10  # label scoring: the labels are among the few likeliest tokens
TOP_FEATURES = 2000  # a head's tokens are among these for ~all texts (measured: its 1,000 for 90% of them)


def file_fingerprint(path: Path) -> str:
    """A GGUF file's identity: its size and the hash of its first and last MiB (the header with the
    metadata, and the last tensors)."""
    digest, size = hashlib.sha256(str(path.stat().st_size).encode()), path.stat().st_size
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


RUN_STEP = 8  # a prompt's runs of 16 tokens are compared with a slot's every RUN_STEP tokens
SAME_START = 32  # tokens: past the chat template's header, into the system prompt's own words


def gguf_identity(
    name: str, original: Path, requantized: bool, tokenizer: ChatTokenizer, sentiment: SentimentSettings
) -> Identity:
    """What a llama.cpp head is bound to: the GGUF file (`original`, served as it is or as tonebot's
    Q8_0 copy), the final state (layer -1: llama.cpp runs every layer) and the sentiment prompt.
    The OpenAI-compatible engine reads the same features from a llama.cpp server (core/remote.py)."""
    return Identity(
        model=name, fingerprint=file_fingerprint(original), dtype="llama.cpp:Q8_0" if requantized else "llama.cpp",
        hidden_size=tokenizer.tokenizer.get_vocab_size(), layer=-1, pooling="logprobs",
        prompt=head.prompt_hash(*sentiment_prompt(tokenizer, sentiment)),
    )  # fmt: skip


def shared_prefix(a: list[int], b: list[int]) -> int:
    return next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def runs(ids: list[int], step: int = 1, n: int = 16) -> set[tuple[int, ...]]:
    """The runs of `n` tokens in `ids` starting at every `step`th token."""
    return {tuple(ids[i : i + n]) for i in range(0, max(1, len(ids) - n + 1), step)}


class Slots:
    """Some of llama.cpp's slots, handed out by tonebot: each keeps the KV cache of the prompt it ran
    last, and llama.cpp reuses any stretch of it the next prompt repeats (`n_cache_reuse`: shifted in
    place, so a conversation whose oldest turns were dropped recomputes only what is new). So a
    request goes to the free slot whose last prompt shares the most token runs with its own (a
    conversation's next turn finds its history, a mood pass the sentiment prompt), else to the one
    unused longest. Mood passes and replies have slots of their own: replies never push the
    sentiment prompt out of the cache."""

    def __init__(self, ids: range) -> None:
        self._last: dict[int, tuple[list[int], set[tuple[int, ...]]]] = {i: ([], set()) for i in ids}
        self._used = dict.fromkeys(ids, 0)
        self._busy: set[int] = set()
        self._turn = itertools.count(1)
        self._changed = asyncio.Condition()

    def _worth(self, slot: int, prompt: list[int], mine: set[tuple[int, ...]]) -> int:
        """Tokens of `prompt` the slot's cache gives, less the tokens of it the prompt throws away.
        Nothing is given unless they begin alike for SAME_START tokens (llama.cpp reuses runs after
        the shared beginning only if the prompt's next tokens are in the cache: a different system
        prompt rules that out), then the shared runs (one per RUN_STEP tokens). So a conversation
        finds its own slot; a new one takes an empty slot rather than another conversation's (sharing
        only a system prompt gains ~40 tokens and throws away that conversation's whole history);
        with no empty slot it takes the one whose loss is least."""
        last, last_runs = self._last[slot]
        given = RUN_STEP * len(last_runs & mine) if shared_prefix(last, prompt) >= SAME_START else 0
        return min(given, len(last)) - max(0, len(last) - given)

    @contextlib.asynccontextmanager
    async def take(self, prompt: list[int]) -> AsyncIterator[int]:
        mine = runs(prompt, step=RUN_STEP)  # a stretch of 23 tokens both share holds one of these
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._busy) < len(self._last))
            free = [i for i in self._last if i not in self._busy]
            slot = max(free, key=lambda i: (self._worth(i, prompt, mine), -self._used[i]))
            self._busy.add(slot)
        try:
            yield slot
        finally:
            async with self._changed:
                self._last[slot], self._used[slot] = (prompt, runs(prompt)), next(self._turn)
                self._busy.discard(slot)
                self._changed.notify_all()


class LlamaCppEngine:
    """The engine protocol on llama.cpp's server loop, called in process (no HTTP on the way)."""

    def __init__(
        self, server: Any, tokenizer: ChatTokenizer, settings: ModelSettings, sentiment: SentimentSettings,
        identity: Identity, kv_tokens: int, heads: Path | None = None, gguf_path: Path | None = None,
    ) -> None:  # fmt: skip
        self.server, self.tokenizer, self.settings = server, tokenizer, settings
        self.gguf_path = gguf_path  # the weights, memory-mapped
        self.source_name = identity.model
        self.max_text_tokens = sentiment.max_text_tokens
        prefix, suffix = sentiment_prompt(tokenizer, sentiment)
        self._prefix, self._suffix = tokenizer.encode(prefix), tokenizer.encode(suffix)
        self.identity = identity
        self.head = head.find(sentiment.head, identity, heads)
        if self.head is None and sentiment.head == "auto" and not sentiment.fit_automatically:
            log.warning("no mood head fits %s with llama.cpp and this prompt: reading the mood by label scoring "
                        "(fit one with `tonebot train-head`)", identity.model)  # fmt: skip
        # blocking calls into llama.cpp wait here, off the event loop; replies beyond the slots queue
        self._pool = ThreadPoolExecutor(settings.max_queue + SENTIMENT_SLOTS, thread_name_prefix="llamacpp")
        self._moods = Slots(range(SENTIMENT_SLOTS))  # their cache keeps the sentiment prompt's prefix
        self._replies = Slots(range(SENTIMENT_SLOTS, SENTIMENT_SLOTS + settings.max_concurrent_replies))
        # The KV cache's tokens a reply may hold while it runs (what the mood slots may hold is kept
        # back): llama.cpp evicts idle slots' caches as needed, but active ones that overflow it all
        # fail with "Context size has been exceeded", so a reply waits until its tokens fit.
        self._kv_free = kv_tokens - SENTIMENT_SLOTS * self.mood_tokens_of(tokenizer, sentiment)
        self._kv = asyncio.Condition()
        self._in_flight = 0
        self._closed = False
        metrics.QUEUE_DEPTH.set_function(lambda: self._in_flight)

    @classmethod
    async def load(cls, settings: ModelSettings, sentiment: SentimentSettings) -> LlamaCppEngine:
        started = time.perf_counter()
        source = loading.resolve(settings.id, settings.gguf_file, settings.fallback_to_embedded)
        if not source.gguf_file:
            raise ConfigError(f"model.engine = 'llamacpp' runs .gguf files; {source.name} is not one")
        engine = await asyncio.to_thread(cls._open, source, settings, sentiment)
        # each mood slot computes the prompt's prefix once; start-up work, not a customer's: no admission
        n = TOP_FEATURES if engine.head is not None else TOP_LABELS
        await asyncio.gather(*(engine.read("warm-up", n) for _ in range(SENTIMENT_SLOTS)))
        mood = "head on the next-token log-probabilities" if engine.head else "label scoring"
        log.info("model %s ready in %.1fs (llama.cpp, mood: %s)", source.name, time.perf_counter() - started, mood)
        return engine

    @classmethod
    def _open(cls, source: loading.ModelSource, settings: ModelSettings, sentiment: SentimentSettings) -> Any:
        import xllamacpp

        original = source.path / source.gguf_file
        if (gguf := requantize.cached(original, settings.cache_dir)) is None:  # a first start: two caches to fill
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as aside:
                copy = aside.submit(requantize.requantized, original, settings.cache_dir)  # beside the tokenizer
                tokenizer = ChatTokenizer.from_dir(loading.tokenizer_dir(source, settings.cache_dir))
                gguf = copy.result()
        else:
            tokenizer = ChatTokenizer.from_dir(loading.tokenizer_dir(source, settings.cache_dir))
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        # one KV cache all slots share, by default room for a whole context per reply slot (measured:
        # 4,096 tokens for 8 growing conversations of the 0.5B made replies wait for room and evicted
        # their histories, 40 answers/min at N = 8 against 51 with 16,384); set smaller, replies wait
        # for room (`_room`); at least one whole context and the mood passes
        params.n_parallel = settings.max_concurrent_replies + SENTIMENT_SLOTS
        params.verbosity = 3 if log.isEnabledFor(logging.DEBUG) else 0  # 3 logs every request's timings
        mood_tokens = cls.mood_tokens_of(tokenizer, sentiment)
        whole = settings.context_tokens * settings.max_concurrent_replies  # what N conversations hold at once
        kv_tokens = max(settings.kv_cache_tokens or whole, settings.context_tokens + SENTIMENT_SLOTS * mood_tokens)
        params.kv_unified, params.n_ctx = True, kv_tokens
        # the KV cache in 8 bits (flash attention reads it so): half the memory, same speed here
        params.cache_type_k = params.cache_type_v = xllamacpp.ggml_type.GGML_TYPE_Q8_0
        params.flash_attn_type = xllamacpp.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.cache_ram_mib = 0  # no second prompt cache in RAM (8 GiB by default): the slots' own suffice
        # reuse cached runs of >= 64 tokens shifted in place: a conversation whose oldest turns were
        # dropped (history_messages, context_tokens) recomputes only what is new (1,100 tokens: 4.7 -> 0.75 s)
        params.n_cache_reuse = 64
        threads = settings.threads or os.cpu_count() or 1
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
        # its HTTP listener stays on loopback behind a key nobody has: tonebot calls it in process
        params.hostnames, params.port, params.api_keys = ["127.0.0.1"], 0, [secrets.token_urlsafe(24)]
        server = xllamacpp.Server(params)
        identity = gguf_identity(source.name, original, gguf != original, tokenizer, sentiment)
        return cls(server, tokenizer, settings, sentiment, identity, kv_tokens, settings.cache_dir / "heads", gguf)

    @staticmethod
    def mood_tokens_of(tokenizer: ChatTokenizer, sentiment: SentimentSettings) -> int:
        """The most tokens one mood pass holds: the prompt around the longest text it reads, and one more."""
        prefix, suffix = sentiment_prompt(tokenizer, sentiment)
        return len(tokenizer.encode(prefix)) + sentiment.max_text_tokens + len(tokenizer.encode(suffix)) + 1

    @contextlib.asynccontextmanager
    async def _room(self, tokens: int) -> AsyncIterator[None]:
        """Hold `tokens` of the KV cache while a reply runs; wait until they are free."""
        async with self._kv:
            await self._kv.wait_for(lambda: self._kv_free >= tokens)
            self._kv_free -= tokens
        try:
            yield
        finally:
            async with self._kv:
                self._kv_free += tokens
                self._kv.notify_all()

    def health(self) -> Health:
        if self._closed:
            return Health("dead", "the engine is closed")
        return Health("ready", queued=self._in_flight, capacity=self.settings.max_queue)

    def _admit(self, n: int = 1) -> None:
        if self._in_flight + n > self.settings.max_queue:
            raise Busy()

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def prompts(self, texts: Sequence[str]) -> list[list[int]]:
        """The sentiment prompt around each text (at most `max_text_tokens` of it), as token ids."""
        return [self._prefix + capped(self.tokenizer.encode(t), self.max_text_tokens) + self._suffix for t in texts]

    def top_logprobs(self, text: str, n: int, slot: int = -1) -> dict[int, tuple[str, float]]:
        """Blocking: the `n` likeliest next tokens after the sentiment prompt around `text`, {id: (token,
        log-probability)}; the prompt's prefix is cached in the slot, so only the text is computed."""
        body = {"prompt": self.prompts([text])[0], "max_tokens": 1, "temperature": 0, "n_probs": n, "logprobs": n,
                "cache_prompt": True, "id_slot": slot}  # fmt: skip
        response = self.server.handle_completions(body)
        try:
            top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"llama.cpp gave no log-probabilities: {response}") from exc
        return {int(t["id"]): (str(t["token"]), float(t["logprob"])) for t in top}

    def probabilities(self, tops: Sequence[dict[int, tuple[str, float]]]) -> np.ndarray:
        """(n, 3) mood probabilities from each text's top log-probabilities: the head, or label scoring."""
        if self.head is None:
            return self.label_probabilities(tops)
        assert self.head.tokens is not None  # a head fitted on llama.cpp (its identity says so)
        found = [{i: lp for i, (_, lp) in top.items()} for top in tops]
        return self.head.probabilities(head.logprob_features(found, self.head.tokens))

    @staticmethod
    def label_probabilities(tops: Sequence[dict[int, tuple[str, float]]]) -> np.ndarray:
        """(n, 3) label-token scoring: the labels' share of the top tokens' probability."""
        rows = []
        for top in tops:
            content = {"content": [{"top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.values()]}]}
            scores = label_scores(content) or dict.fromkeys(LABELS, 1 / len(LABELS))
            rows.append([scores[label] for label in LABELS])
        return np.array(rows, dtype=np.float32)

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        self._admit(len(texts))
        self._in_flight += len(texts)
        n = TOP_FEATURES if self.head is not None else TOP_LABELS
        try:
            tops = await asyncio.gather(*(self.read(text, n) for text in texts))
            rows = self.probabilities(tops).tolist()
        except (KeyError, ValueError, RuntimeError) as exc:
            raise EngineError(f"the mood pass failed: {exc}") from exc
        finally:
            self._in_flight -= len(texts)
        return [Mood.from_scores(dict(zip(LABELS, row, strict=True))) for row in rows]

    async def read(self, text: str, n: int) -> dict[int, tuple[str, float]]:
        async with self._moods.take(self._prefix) as slot:  # the KV cache keeps room for these slots
            result: dict[int, tuple[str, float]] = await self._call(self.top_logprobs, text, n, slot)
            return result

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """Stream the answer; a listener that goes away stops its generation at the next token."""
        self._admit()
        self._in_flight += 1
        loop, chunks = asyncio.get_running_loop(), asyncio.Queue[Any]()
        gone = threading.Event()

        def on_chunk(chunk: Any) -> bool:  # on llama.cpp's side; True stops the generation
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            return gone.is_set()

        try:
            ids = fit_chat(self.tokenizer, messages, self.settings.context_tokens - self.settings.max_new_tokens)[0]
            async with self._replies.take(ids) as slot, self._room(len(ids) + self.settings.max_new_tokens):
                body = {"prompt": ids, "max_tokens": self.settings.max_new_tokens, "stream": True, "id_slot": slot,
                        "temperature": self.settings.temperature, "top_p": self.settings.top_p,
                        "cache_prompt": True}  # fmt: skip
                done = loop.run_in_executor(self._pool, self.server.handle_completions, body, on_chunk)
                done.add_done_callback(lambda _: loop.call_soon_threadsafe(chunks.put_nowait, None))
                while (chunk := await chunks.get()) is not None:
                    if "error" in chunk:
                        raise EngineError(f"generation failed: {chunk['error']}")
                    for choice in chunk.get("choices") or ():
                        if choice.get("text"):
                            yield choice["text"]
                await done
        finally:
            gone.set()
            self._in_flight -= 1

    async def aclose(self) -> None:
        """llama.cpp's server stops when its last reference goes: dropped on a worker thread, since
        stopping joins its loop."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        holder, self.server = [self.server], None
        await asyncio.to_thread(holder.clear)
