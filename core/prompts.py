"""The mood of the current message picks the system prompt for the reply."""

from __future__ import annotations

from collections.abc import Sequence

from core.events import ChatMessage, Mood
from core.settings import PromptSettings


def system_prompt(prompts: PromptSettings, mood: Mood) -> str:
    """Soothing for a negative message, normal otherwise."""
    return prompts.soothing if mood.label == "negative" else prompts.normal


def build_chat(prompts: PromptSettings, mood: Mood, history: Sequence[ChatMessage], text: str) -> list[ChatMessage]:
    """System prompt, then the stored turns oldest first, then the current message."""
    return [ChatMessage("system", system_prompt(prompts, mood)), *history, ChatMessage("user", text)]
