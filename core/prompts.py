"""Prompts, torch-free: the mood picks the reply's system prompt, the chat is fitted to a token
budget, and the sentiment instruction is rendered in the model's own chat template."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from core.events import LABELS, ChatMessage, Label, Mood
from core.settings import PromptSettings, SentimentSettings

_PLACEHOLDER = "\u2063TONEBOT_TEXT\u2063"


def build_chat(prompts: PromptSettings, mood: Mood, history: Sequence[ChatMessage], text: str) -> list[ChatMessage]:
    """The normal system prompt, the stored turns oldest first, then the current message; the soothing
    prompt right before each upset message, past (its stored mood) and current. The mood's instruction
    sits where the mood was, so a conversation's prompt only grows at its end whatever the moods: the
    model's cache of its turns serves every next turn (a mood that changed at the top, or a soothing
    prompt gone from a past turn, made llama.cpp compute the history after it again)."""
    steer = ChatMessage("system", prompts.soothing)
    chat = [ChatMessage("system", prompts.normal)]
    for past in history:
        chat += [steer, past] if past.role == "user" and past.mood == "negative" else [past]
    return [*chat, *([steer] if mood.label == "negative" else []), ChatMessage("user", text)]


def fit_chat(tokenizer: Any, messages: Sequence[ChatMessage], budget: int) -> tuple[list[int], list[ChatMessage]]:
    """(token ids, the messages kept): the oldest history turns are dropped until the chat fits `budget`
    tokens; the system prompts and the newest message always stay (a too-long one is cut from the left).
    A chat template that takes a system prompt only first gets the current turn's there (the soothing
    one, if it has one) and none in the history."""
    system, *history, last = messages
    steer: list[ChatMessage] = []
    while history and history[-1].role == "system":
        steer.insert(0, history.pop())
    while True:
        kept = [system, *history, *steer, last]
        chat = [{"role": m.role, "content": m.content} for m in kept]
        try:
            ids = list(tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=False))
        except Exception:  # e.g. jinja2's TemplateError: "System role only supported at the beginning"
            if not any(m.role == "system" for m in kept[1:]):
                raise
            system, steer = (steer or [system])[-1], []
            history = [m for m in history if m.role != "system"]
            continue
        if len(ids) <= budget or not history:
            return ids[-budget:], kept
        lead = int(history[0].role == "system")  # a turn's soothing prompt goes with the turn
        history = history[lead + 2 :] if len(history) > lead + 1 and history[lead].role == "user" else history[1:]


def sentiment_prompt(tokenizer: Any, settings: SentimentSettings) -> tuple[str, str]:
    """The classification prompt in the model's chat template, split around the message: (prefix, suffix).
    The suffix ends with the answer prefix, so the next token is the label."""
    messages = [{"role": "system", "content": settings.instruction}]
    for text, label in settings.examples:
        answer = f"{settings.answer_prefix} {label}".strip()
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": _PLACEHOLDER})
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prefix, suffix = rendered.split(_PLACEHOLDER)
    return prefix, suffix + settings.answer_prefix


def capped(ids: list[int], limit: int) -> list[int]:
    """At most `limit` tokens of a message: its beginning and its end (where a mood is often said)."""
    if len(ids) <= limit:
        return ids
    return ids[: limit // 2] + ids[len(ids) - (limit - limit // 2) :]


def label_of_token(token: str) -> Label | None:
    """The label a generated token starts, if exactly one: " Neg" -> negative, "neutral" -> neutral, "n" -> None."""
    word = token.strip().lower()
    matches = [label for label in LABELS if len(word) >= 2 and label.startswith(word)]
    return matches[0] if len(matches) == 1 else None


def label_scores(logprobs: dict[str, Any]) -> dict[str, float] | None:
    """Probabilities over LABELS from a completion's first-token top log-probabilities, in either
    shape servers return: legacy `top_logprobs: [{token: logprob}]` (OpenAI, vLLM) or chat-style
    `content: [{top_logprobs: [{token, logprob}]}]` (llama.cpp). None when no label is among them."""
    if logprobs.get("top_logprobs"):
        candidates = list(logprobs["top_logprobs"][0].items())
    elif logprobs.get("content"):
        candidates = [(c["token"], c["logprob"]) for c in logprobs["content"][0].get("top_logprobs", [])]
    else:
        return None
    mass: dict[str, float] = dict.fromkeys(LABELS, 0.0)
    for token, logprob in candidates:
        if (label := label_of_token(token)) is not None:
            mass[label] += math.exp(logprob)
    total = sum(mass.values())
    return {label: p / total for label, p in mass.items()} if total > 0 else None
