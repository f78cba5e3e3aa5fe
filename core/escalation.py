"""When a conversation needs a human: a pure policy over one user's mood history.

Escalate when the current message is negative with high confidence, when N of the user's last
M messages are negative (the current one among them), or when the user asks for a person.
Hysteresis: never while an escalation is open, not within the cooldown after one was resolved,
and a streak of non-negative messages clears the earlier negatives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.events import Mood
from core.settings import EscalationSettings


@dataclass(frozen=True)
class Decision:
    escalate: bool
    reason: str = ""  # high_negative | repeated_negative | asked_for_human


@dataclass(frozen=True)
class EscalationState:
    """What the policy needs to know about the conversation's escalations."""

    open: bool = False
    last_resolved_at: datetime | None = None


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def asks_for_human(text: str, phrases: Sequence[str], exclusions: Sequence[str] = ()) -> bool:
    """Whole words for alphabetic phrases ("agent" but not "agents' fees"), substrings for CJK."""
    said = _normalize(text)
    for excluded in map(_normalize, exclusions):
        said = said.replace(excluded, " ") if excluded else said
    for phrase in map(_normalize, phrases):
        if not phrase:
            continue
        if phrase.isascii():
            if re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", said):
                return True
        elif phrase in said.replace(" ", ""):
            return True
    return False


def recent_negatives(moods: Sequence[Mood], settings: EscalationSettings) -> int:
    """Negatives among the last `window` moods, counting back only to the last non-negative streak."""
    count = streak = 0
    for mood in list(moods)[::-1][: settings.window]:
        if mood.label == "negative":
            count, streak = count + 1, 0
        else:
            streak += 1
            if streak >= settings.reset_streak:
                break
    return count


def decide(
    settings: EscalationSettings, moods: Sequence[Mood], text: str, state: EscalationState, now: datetime
) -> Decision:
    """`moods` are this user's moods in the conversation, oldest first, the current message's last."""
    if not settings.enabled or state.open or not moods:
        return Decision(False)
    if state.last_resolved_at is not None:
        resolved = state.last_resolved_at
        if resolved.tzinfo is None:  # SQLite hands back naive UTC
            resolved = resolved.replace(tzinfo=now.tzinfo)
        if now - resolved < timedelta(minutes=settings.cooldown_minutes):
            return Decision(False)
    if asks_for_human(text, settings.human_phrases, settings.not_human_phrases):
        return Decision(True, "asked_for_human")
    current = moods[-1]
    if current.label != "negative":
        return Decision(False)
    if current.score >= settings.high_negative:
        return Decision(True, "high_negative")
    if recent_negatives(moods, settings) >= settings.negatives:
        return Decision(True, "repeated_negative")
    return Decision(False)
