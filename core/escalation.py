"""When a conversation needs a human: a pure policy over one user's mood history and words.

A direct request for a person escalates. A bare "agent", the same question a third time, a message
negative with high confidence, or N of the user's last M messages negative (the current one among
them) offer a person once; the customer's yes escalates (README "Escalation and handoff").
Hysteresis: never while an escalation is open, not within the cooldown after one was resolved,
and a streak of non-negative messages clears the earlier negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from core.events import Mood, as_utc
from core.offers import OfferState
from core.phrases import answer_of, human_request, loops
from core.settings import EscalationSettings

NO_OFFERS = OfferState()


@dataclass(frozen=True)
class Decision:
    """What the conversation needs after this message: the bot goes on (`continue`), offers a person
    (`offer`), or hands it to one now (`escalate`), and why. A pending offer is taken when the
    decision escalates, declined otherwise."""

    action: Literal["continue", "offer", "escalate"] = "continue"
    # asked_for_human (a direct request) | vague_request (a bare "agent") | loop (asked 3 times) |
    # high_negative | repeated_negative (the mood) | no_answer (the knowledge base had none)
    reason: str = ""

    @property
    def escalate(self) -> bool:
        return self.action == "escalate"


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


def route(
    policy: EscalationSettings | None, state: EscalationState, escalated: bool, mood: str, away: bool = False
) -> Route:
    """The turn's route, from the policy, the conversation's escalation state after this message,
    whether this message escalated it, its mood label, and whether every desk is out of hours (then
    the bot keeps helping, in either mode, until people are back). Pure."""
    pause_mode = policy is not None and policy.mode == "pause" and not away
    if state.with_human or (state.open and pause_mode):  # with a person: the bot writes nothing there
        says = policy is not None and escalated and not state.with_human  # once, as it escalates
        return Route(paused=True, line=policy.pause_line if policy is not None and says else "")
    return Route(soothing=mood == "negative" or state.open)


def recent_negatives(moods: Sequence[Mood], settings: EscalationSettings) -> int:
    """Negatives (at least `repeated_min` sure) among the last `window` moods, counting back only to the
    last non-negative streak (a less sure negative counts as non-negative)."""
    count = streak = 0
    for mood in list(moods)[::-1][: settings.window]:
        if mood.label == "negative" and mood.score >= settings.repeated_min:
            count, streak = count + 1, 0
        else:
            streak += 1
            if streak >= settings.reset_streak:
                break
    return count


def decide(
    settings: EscalationSettings,
    moods: Sequence[Mood],
    text: str,
    state: EscalationState,
    now: datetime,
    offers: OfferState = NO_OFFERS,
    earlier: Sequence[str] = (),
) -> Decision:
    """`moods` are this user's moods in the conversation, oldest first, the current message's last;
    `earlier` their texts before this one, oldest first; `offers` what the bot offered them lately.

    A direct request escalates. The answer to an offer: yes escalates (for the offer's reason), else
    the bot goes on and offers nothing more for `offer_hours` — but a bare "agent" then escalates (they
    ask again). A bare "agent", a question asked for the third time, or a bad mood offers a person
    (with `offer_first` off they escalate at once, as a request does)."""
    if not settings.enabled or state.open or not moods:
        return Decision()
    cooldown = timedelta(minutes=settings.cooldown_minutes)
    if state.last_resolved_at is not None and now - as_utc(state.last_resolved_at) < cooldown:
        return Decision()
    request = human_request(text, settings)
    if request == "direct" or (request == "vague" and offers.made and not offers.pending):
        return Decision("escalate", "asked_for_human")
    if offers.pending:  # this message answers the offer
        taken = request or answer_of(text, settings) == "yes"
        return Decision("escalate", offers.pending) if taken else Decision()
    reason = _offer_reason(settings, moods, text, request, earlier)
    if not reason:
        return Decision()
    if not settings.offer_first:
        return Decision("escalate", reason)
    return Decision() if offers.made else Decision("offer", reason)


def _offer_reason(
    settings: EscalationSettings, moods: Sequence[Mood], text: str, request: str, earlier: Sequence[str]
) -> str:
    if request == "vague":
        return "vague_request"
    if loops(text, earlier[-settings.loop_window :], settings):
        return "loop"
    current = moods[-1]
    if current.label != "negative":
        return ""
    if current.score >= settings.high_negative:
        return "high_negative"
    if recent_negatives(moods, settings) >= settings.negatives:
        return "repeated_negative"
    return ""


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
