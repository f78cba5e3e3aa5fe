"""When a conversation needs a human: a pure policy over one user's mood history.

Escalate when the current message is negative with high confidence, when N of the user's last
M messages are negative (the current one among them), or when the user asks for a person.
Hysteresis: never while an escalation is open, not within the cooldown after one was resolved,
and a streak of non-negative messages clears the earlier negatives.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.events import Mood, as_utc
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
    escalation_id: int | None = None  # the open one
    with_human: bool = False  # the open one is taken over by an agent: the bot is silent


@dataclass(frozen=True)
class Route:
    """How the bot answers a turn: `reply` (soothing or not), or stay `paused` (a person has the
    conversation), saying `line` (the pause line, once, as the conversation escalates) or nothing."""

    paused: bool = False
    line: str = ""
    soothing: bool = False  # the soothing prompt (a negative mood, or an escalation open)


def route(policy: EscalationSettings | None, state: EscalationState, escalated: bool, mood: str) -> Route:
    """The turn's route, from the policy, the conversation's escalation state after this message,
    whether this message escalated it, and its mood label. Pure."""
    pause_mode = policy is not None and policy.mode == "pause"
    if state.with_human or (state.open and pause_mode):  # with a person: the bot writes nothing there
        says = policy is not None and escalated and not state.with_human  # once, as it escalates
        return Route(paused=True, line=policy.pause_line if policy is not None and says else "")
    return Route(soothing=mood == "negative" or state.open)


FILLERS = ("a", "an", "the", "your", "some", "one", "of", "real", "live", "actual", "proper", "human")
POLITE = ("please", "pls", "plz", "now", "asap", "i", "want", "need", "a", "an", "the", "real", "live", "一下",
          "请", "我", "要", "吧", "啊", "呀", "谢谢")  # fmt: skip


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _alternatives(phrases: Sequence[str], latin: bool) -> str:
    """A regex alternation of the Latin-script (or the CJK) phrases, longest first; never matches if none."""
    chosen = {_normalize(p) for p in phrases if p.strip() and p.isascii() == latin}
    return "|".join(re.escape(p) for p in sorted(chosen, key=len, reverse=True)) or r"(?!x)x"


def asks_for_human(text: str, settings: EscalationSettings) -> bool:
    """A request for a person, as intent, not a word: a way of asking (`request_phrases`: "speak to",
    "transfer me to", "找", "转") followed by someone to ask for (`human_phrases`: "supervisor",
    "real person", "人工", "客服"), or a message that is nothing but such a someone ("operator please",
    "人工"). So "agent" as an ordinary noun, "human skin" or "人工智能" (`not_human_phrases`) do not count."""
    excluded, latin, cjk, someone, polite, keys = _patterns(settings)
    low = text.casefold()
    if text.isascii() and not any(key in low for key in keys):
        return False  # every match needs a someone, so its longest word: most messages end here (~1 us)
    said = excluded.sub(" ", _normalize(text)) if excluded else _normalize(text)
    return bool(latin.search(said) or cjk.search(said.replace(" ", "")) or _only_someone(said, someone, polite))


@functools.lru_cache(maxsize=16)
def _patterns(settings: EscalationSettings) -> tuple[re.Pattern[str] | None, re.Pattern[str], re.Pattern[str],
                                                    re.Pattern[str] | None, re.Pattern[str], set[str]]:  # fmt: skip
    """The settings' phrases compiled once (a report checks every customer turn of thousands)."""
    excluded = sorted(set(filter(None, map(_normalize, settings.not_human_phrases))), key=len, reverse=True)
    asking, someone = settings.request_phrases, settings.human_phrases
    fillers = "|".join(FILLERS)
    latin = (
        rf"(?<!\w)(?:{_alternatives(asking, True)}) (?:(?:{fillers}) ){{0,3}}(?:{_alternatives(someone, True)})(?!\w)"
    )
    cjk = rf"(?:{_alternatives(asking, False)})(?:一个|个|一下|下)?(?:{_alternatives(someone, False)})"
    persons = sorted({_normalize(p) for p in someone if p.strip()}, key=len, reverse=True)
    bounded = [rf"(?<!\w){re.escape(p)}(?!\w)" if p.isascii() else re.escape(p) for p in persons]
    without = re.compile("|".join(map(re.escape, excluded))) if excluded else None
    persons_re = re.compile("|".join(bounded)) if bounded else None
    keys = {max(p.split(), key=len) for p in persons if p.isascii()}  # ASCII text: one of these must be in it
    return without, re.compile(latin), re.compile(cjk), persons_re, re.compile("|".join(map(re.escape, POLITE))), keys


def _only_someone(said: str, persons: re.Pattern[str] | None, polite: re.Pattern[str]) -> bool:
    """The message is a someone and politeness: "operator please", "HUMAN!!", "请转人工" (minus the verb)."""
    if persons is None:
        return False
    marked = persons.sub(" \x00 ", said)
    if "\x00" not in marked:
        return False
    return all(t == "\x00" or t in POLITE or (not t.isascii() and not polite.sub("", t)) for t in marked.split())


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
    cooldown = timedelta(minutes=settings.cooldown_minutes)
    if state.last_resolved_at is not None and now - as_utc(state.last_resolved_at) < cooldown:
        return Decision(False)
    if asks_for_human(text, settings):
        return Decision(True, "asked_for_human")
    current = moods[-1]
    if current.label != "negative":
        return Decision(False)
    if current.score >= settings.high_negative:
        return Decision(True, "high_negative")
    if recent_negatives(moods, settings) >= settings.negatives:
        return Decision(True, "repeated_negative")
    return Decision(False)


class PublicLimit:
    """How many escalations untrusted callers may open per hour, per user and per origin (anyone on
    a public chat page could otherwise page the team again and again with new conversation ids).
    In memory, per process; bounded: keys idle for an hour are dropped."""

    def __init__(self, per_user: int, per_origin: int, window: timedelta = timedelta(hours=1)) -> None:
        self.limits, self.window = {"user": per_user, "origin": per_origin}, window
        self._seen: dict[tuple[str, str], list[datetime]] = {}

    def allow(self, user: str, origin: str, now: datetime) -> bool:
        """Whether one more escalation fits; counts it when it does."""
        since = now - self.window
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > since}
        keys = [(kind, value) for kind, value in (("user", user), ("origin", origin)) if self.limits[kind]]
        recent = {key: [t for t in self._seen.get(key, []) if t > since] for key in keys}
        if any(len(recent[key]) >= self.limits[key[0]] for key in keys):
            return False
        for key in keys:
            self._seen[key] = [*recent[key], now]
        return True
