"""An OpenAI-compatible inference server behind the engine protocol (vLLM, llama.cpp's server,
Ollama, TGI), through the official `openai` client.

Replies stream from /v1/chat/completions. Sentiment uses /v1/completions on the same prompt the
in-process engine scores — the classification instruction in the model's chat template, ending in
the answer prefix — asking for one token with its top log-probabilities and reading the label
tokens among them. A server that returns no log-probabilities, or none for a label, falls back to
the label its one generated word names. The tokenizer (chat template, token budget) is loaded
locally: it is small, and the server's model must be the configured `model.id`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from openai import APIError, AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from core import loading, metrics
from core.engine import Health
from core.errors import Busy, ConfigError, EngineError
from core.events import LABELS, ChatMessage, Mood
from core.prompts import fit_chat, label_of_token, label_scores, sentiment_prompt
from core.settings import ModelSettings, SentimentSettings

TOP_LOGPROBS = 10


class OpenAICompatEngine:
    """The engine protocol over HTTP; the server does the batching, this process only counts."""

    def __init__(
        self, client: AsyncOpenAI, model: str, tokenizer: Any, settings: ModelSettings, sentiment: SentimentSettings
    ) -> None:
        self.client, self.model, self.tokenizer, self.settings = client, model, tokenizer, settings
        self._prefix, self._suffix = sentiment_prompt(tokenizer, sentiment)
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
        tokenizer = await asyncio.to_thread(loading.load_tokenizer, source, settings.cache_dir)
        return cls(client, model, tokenizer, settings, sentiment)

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
        try:
            response = await self.client.completions.create(
                model=self.model,
                prompt=self._prefix + text + self._suffix,
                max_tokens=1,
                temperature=0,
                logprobs=TOP_LOGPROBS,
            )
        except APIError as exc:
            raise EngineError(f"sentiment request failed: {exc}") from exc
        choice = response.choices[0]
        scores = label_scores(choice.logprobs.model_dump() if choice.logprobs else {})
        if scores is None:  # fallback: the label the generated word names
            label = label_of_token(choice.text) or "neutral"
            scores = {name: float(name == label) for name in LABELS}
        return Mood.from_scores(scores)

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
