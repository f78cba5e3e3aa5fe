"""An OpenAI-compatible inference server behind the engine protocol (vLLM, llama.cpp's server,
Ollama, TGI), through the official `openai` client.

Replies stream from /v1/chat/completions. Sentiment uses /v1/completions on the same prompt the
in-process engine scores — the classification instruction in the model's chat template, ending in
the answer prefix — asking for one token with its top log-probabilities. With a mood head (for a
GGUF `model.id`: the head fitted on that file, found like the in-process engine's) the prompt is
sent as the same token ids and the head reads the ids of the top `TOP_FEATURES` — llama.cpp's server
returns them (`n_probs`); vLLM only up to its `--max-logprobs` (20 by default: start it with
`--max-logprobs 2000`), and the OpenAI API 20 — and a server that returns too few is read by
label scoring from then on, with an error in the log. Label scoring reads the label tokens among
the top 10; a server that returns no log-probabilities, or none for a label, falls back to the
label its one generated word names. The tokenizer (chat template, token budget) is loaded locally:
it is small, and the server's model must be the configured `model.id`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from openai import APIError, AsyncOpenAI, BadRequestError
from openai.types.chat import ChatCompletionMessageParam

from core import loading, metrics
from core.engine import Health
from core.errors import Busy, ConfigError, EngineError
from core.events import LABELS, ChatMessage, Mood
from core.local import head, requantize
from core.local.head import MoodHead
from core.local.llamacpp import TOP_FEATURES, gguf_identity
from core.prompts import capped, fit_chat, label_of_token, label_scores, sentiment_prompt
from core.settings import ModelSettings, SentimentSettings

log = logging.getLogger(__name__)
TOP_LOGPROBS = 10


class OpenAICompatEngine:
    """The engine protocol over HTTP; the server does the batching, this process only counts."""

    def __init__(
        self, client: AsyncOpenAI, model: str, tokenizer: Any, settings: ModelSettings, sentiment: SentimentSettings,
        mood_head: MoodHead | None = None,
    ) -> None:  # fmt: skip
        self.client, self.model, self.tokenizer, self.settings = client, model, tokenizer, settings
        self._prefix, self._suffix = sentiment_prompt(tokenizer, sentiment)
        self.head, self.max_text_tokens = mood_head, sentiment.max_text_tokens
        self._in_flight = 0
        metrics.QUEUE_DEPTH.set_function(lambda: self._in_flight)

    @classmethod
    async def connect(
        cls, settings: ModelSettings, sentiment: SentimentSettings, api_key: str = ""
    ) -> OpenAICompatEngine:
        if not settings.base_url:
            raise ConfigError("model.engine = 'openai' needs model.base_url (e.g. http://inference:8080/v1)")
        client = AsyncOpenAI(
            base_url=settings.base_url, api_key=api_key or "none", timeout=settings.request_timeout, max_retries=2
        )
        try:
            model = settings.served_model or (await client.models.list()).data[0].id
        except (APIError, IndexError) as exc:
            raise EngineError(f"the inference server at {settings.base_url} did not list a model: {exc}") from exc
        source = loading.resolve(settings.id, settings.gguf_file, settings.fallback_to_embedded)
        if not source.gguf_file:
            if sentiment.head not in ("", "auto"):
                raise ConfigError("a mood head for model.engine = 'openai' needs model.id to be the served GGUF file")
            tokenizer = await asyncio.to_thread(loading.load_tokenizer, source, settings.cache_dir)
            return cls(client, model, tokenizer, settings, sentiment)
        tokenizer, found = await asyncio.to_thread(_gguf_head, source, settings, sentiment)
        log.info("mood over %s: %s", settings.base_url, "the head on log-probabilities" if found else "label scoring")
        return cls(client, model, tokenizer, settings, sentiment, found)

    def health(self) -> Health:
        return Health("ready", queued=self._in_flight, capacity=self.settings.max_queue)

    def _admit(self) -> None:
        if self._in_flight >= self.settings.max_queue:
            raise Busy()

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        self._admit()
        self._in_flight += len(texts)
        try:
            return list(await asyncio.gather(*(self._classify_one(t) for t in texts)))
        finally:
            self._in_flight -= len(texts)

    async def _classify_one(self, text: str) -> Mood:
        if self.head is not None and (read := await self.head_scores(text)) is not None:
            return Mood.from_scores(dict(zip(LABELS, read, strict=True)))
        return Mood.from_scores(await self.label_scores(text))

    async def label_scores(self, text: str) -> dict[str, float]:
        """Label scoring: the labels' share among the first token's top 10 log-probabilities."""
        try:
            response = await self.client.completions.create(
                model=self.model, prompt=self._prefix + text + self._suffix, max_tokens=1, temperature=0,
                logprobs=TOP_LOGPROBS,
            )  # fmt: skip
        except APIError as exc:
            raise EngineError(f"sentiment request failed: {exc}") from exc
        choice = response.choices[0]
        scores = label_scores(choice.logprobs.model_dump() if choice.logprobs else {})
        if scores is None:  # fallback: the label the generated word names
            label = label_of_token(choice.text) or "neutral"
            scores = {name: float(name == label) for name in LABELS}
        return scores

    async def head_scores(self, text: str) -> list[float] | None:
        """The head's probabilities from the server's top log-probabilities of the same token ids
        (None, and label scoring from then on, when the server cannot give them)."""
        assert self.head is not None and self.head.tokens is not None
        prompt = self._ids(self._prefix) + capped(self._ids(text), self.max_text_tokens) + self._ids(self._suffix)
        try:
            response = await self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=1, temperature=0, logprobs=TOP_FEATURES,
                extra_body={"n_probs": TOP_FEATURES, "return_tokens_as_token_ids": True},
            )  # fmt: skip
        except BadRequestError as exc:  # e.g. vLLM above its --max-logprobs
            self._without_head(f"the server refused {TOP_FEATURES} log-probabilities ({exc})")
            return None
        except APIError as exc:
            raise EngineError(f"sentiment request failed: {exc}") from exc
        choice = response.choices[0]
        top = top_ids(choice.logprobs.model_dump() if choice.logprobs else {})
        if len(top) < TOP_FEATURES // 2:
            self._without_head(f"the server returned {len(top)} log-probabilities with token ids")
            return None
        return self.head.probabilities(head.logprob_features([top], self.head.tokens))[0].tolist()

    def _without_head(self, why: str) -> None:
        log.error("the mood head needs the top %d log-probabilities by token id and %s: reading the mood by "
                  "label scoring from now on (README: Sentiment quality)", TOP_FEATURES, why)  # fmt: skip
        self.head = None

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        self._admit()
        self._in_flight += 1
        try:
            budget = self.settings.context_tokens - self.settings.max_new_tokens
            _, kept = fit_chat(self.tokenizer, messages, budget)
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], [{"role": m.role, "content": m.content} for m in kept]),
                max_tokens=self.settings.max_new_tokens,
                temperature=self.settings.temperature,
                stream=True,
            )
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except APIError as exc:
            raise EngineError(f"reply request failed: {exc}") from exc
        finally:
            self._in_flight -= 1

    async def aclose(self) -> None:
        await self.client.close()


def _gguf_head(source: loading.ModelSource, settings: ModelSettings, sentiment: SentimentSettings) -> tuple[Any, Any]:
    """A GGUF model's own tokenizer (no Transformers) and the head fitted on that file, if any."""
    from core.local.chat_tokenizer import ChatTokenizer

    original = source.path / source.gguf_file
    tokenizer = ChatTokenizer.from_dir(loading.tokenizer_dir(source, settings.cache_dir))
    requantized = requantize.slow_on_cpu(original)  # the head tonebot fits is on its Q8_0 copy
    identity = gguf_identity(source.name, original, requantized, tokenizer, sentiment)
    return tokenizer, head.find(sentiment.head, identity, settings.cache_dir / "heads")


def top_ids(logprobs: dict[str, Any]) -> dict[int, float]:
    """{token id: log-probability} of the first token's top ones, in either shape servers return:
    llama.cpp's `content: [{top_logprobs: [{id, token, logprob}]}]`, or vLLM's legacy
    `top_logprobs: [{"token_id:<id>": logprob}]` (with `return_tokens_as_token_ids`)."""
    if logprobs.get("content"):
        return {int(t["id"]): float(t["logprob"]) for t in logprobs["content"][0].get("top_logprobs", []) if "id" in t}
    if logprobs.get("top_logprobs"):
        found = logprobs["top_logprobs"][0].items()
        return {int(k.split(":", 1)[1]): float(v) for k, v in found if k.startswith("token_id:")}
    return {}
