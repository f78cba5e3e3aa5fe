"""What became of a conversation, and how satisfied its customer seems: pure functions over what
is stored anyway (turns with their moods, escalations, feedback), so the outcome is always that of
the latest turn and needs no model call and no second copy to keep in step.

A chat on a platform never ends (a private chat is one conversation for years), so the
unit of an outcome is an **episode**: the turns of one conversation from a customer's message until
`return_hours` pass with no customer message. The customer who comes back within that time is in
the same episode (not resolved yet); one who comes back later starts a new one.

Outcome of an episode:
- `with_person` — escalated, not resolved yet; `resolved_by_person` — escalated and resolved;
- `open` — not escalated, and the last customer message is younger than `return_hours`;
- `abandoned` — not escalated, then silence after a clearly negative last mood, a customer turn left
  unanswered (unless it was a positive one: "thanks!" needs no answer), or a request for a person;
- `resolved_by_bot` — none of those: answered, not negative at the end, no return in time.

The satisfaction score (0-100, 50 is "no sign either way") is computed from the customer's moods
(valence = p(positive) - p(negative)): where it ended (most), its worst point, the answers' thumbs,
and the outcome. Each part is kept with its points, so the score explains itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Status = Literal["resolved_by_bot", "resolved_by_person", "abandoned", "open", "with_person"]
STATUSES: tuple[Status, ...] = ("resolved_by_bot", "resolved_by_person", "abandoned", "open", "with_person")
WEIGHTS = {"end": 0.5, "worst": 0.2, "feedback": 0.3}  # of valences in [-1, 1]
OUTCOME_POINTS = {"resolved_by_bot": 5, "resolved_by_person": 5, "abandoned": -10, "open": 0, "with_person": 0}
NEGATIVE_END, POSITIVE_END = -0.5, 0.3  # valences: a last mood this low is no resolution; this high needs no answer
SPEAKERS = {"assistant": "the bot's answer", "agent": "the agent's answer"}


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message, as outcomes need it."""

    id: int
    role: str  # user | assistant | agent
    at: datetime
    valence: float | None = None  # a customer turn's mood: p(positive) - p(negative)
    label: str | None = None  # and its label, with its probability
    score: float | None = None
    knowledge: str | None = None  # a bot turn: curated | passages | none
    text: str = ""

    @classmethod
    def of(cls, id: int, role: str, at: datetime, scores: dict[str, float] | None = None, **more: Any) -> Turn:
        """A turn with its mood given as probabilities (as `messages.mood_scores` holds them)."""
        if scores is None:
            return cls(id, role, at, **more)
        label = max(scores, key=lambda k: scores[k])
        return cls(id, role, at, scores["positive"] - scores["negative"], label, scores[label], **more)

    @property
    def mood(self) -> str:
        return f"{self.label} {self.score or 0.0:.2f}"


@dataclass(frozen=True)
class Handoff:
    """An escalation, as outcomes need it."""

    opened_at: datetime
    reason: str
    first_reply_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Part:
    what: str
    points: float


@dataclass(frozen=True)
class Outcome:
    status: Status
    started_at: datetime
    ended_at: datetime  # the last turn
    turns: int
    score: int  # 0-100
    parts: tuple[Part, ...]
    escalated: bool = False
    reasons: tuple[str, ...] = ()
    first_human_reply_s: float | None = None
    handoff_s: float | None = None
    grounded: bool | None = None  # knowledge-base answers: True some were, False it had none, None not asked
    thumbs: tuple[int, int] = (0, 0)  # (up, down) on this episode's answers
    start_valence: float | None = None
    end_valence: float | None = None
    forgotten: bool = False  # its turns were deleted (/forget): counted, no content kept
    rating: int | None = None  # the customer's answer (1-5) to the rating question after a hand-off

    @property
    def explanation(self) -> str:
        return "; ".join(f"{p.what} ({p.points:+.0f})" if abs(p.points) >= 0.5 else p.what for p in self.parts)


@dataclass(frozen=True)
class Episode:
    turns: list[Turn]
    handoffs: list[Handoff] = field(default_factory=list)


def episodes(turns: Sequence[Turn], handoffs: Sequence[Handoff], return_hours: float) -> list[Episode]:
    """A conversation's turns (oldest first) cut where a customer wrote after `return_hours` of no
    customer message; each escalation goes with the episode it was opened in."""
    gap, found, last_user = timedelta(hours=return_hours), list[Episode](), None
    for turn in turns:
        if not found or (turn.role == "user" and last_user is not None and turn.at - last_user > gap):
            found.append(Episode([]))
        found[-1].turns.append(turn)
        last_user = turn.at if turn.role == "user" else last_user
    for handoff in handoffs:
        starts = [e.turns[0].at for e in found]
        index = max((i for i, at in enumerate(starts) if at <= handoff.opened_at), default=0)
        if found:
            found[index].handoffs.append(handoff)
    return found


def outcome_of(
    episode: Episode, now: datetime, return_hours: float, feedback: dict[int, int] | None = None,
    asks_for_human: Callable[[str], bool] = lambda text: False, ratings: dict[int, int] | None = None,
) -> Outcome:  # fmt: skip
    """The episode's outcome and satisfaction score; `feedback` is each bot turn's net thumbs (id -> +n / -n),
    `ratings` the answers to rating questions (the question's id -> 1-5), not part of the score (they check it)."""
    turns, handoffs, feedback = episode.turns, episode.handoffs, feedback or {}
    users = [t for t in turns if t.role == "user"]
    last_user = users[-1] if users else None
    answered = last_user is not None and any(t.role != "user" and t.id > last_user.id for t in turns)
    thumbs = [feedback[t.id] for t in turns if t.id in feedback and t.role != "user"]
    up, down = sum(v for v in thumbs if v > 0), -sum(v for v in thumbs if v < 0)
    if handoffs:
        status: Status = "resolved_by_person" if all(h.resolved_at for h in handoffs) else "with_person"
    elif last_user is not None and now - last_user.at < timedelta(hours=return_hours):
        status = "open"
    elif last_user is not None and (
        (last_user.valence or 0.0) <= NEGATIVE_END
        or (not answered and (last_user.valence or 0.0) < POSITIVE_END)  # "thanks!" needs no answer
        or any(asks_for_human(t.text) for t in users)
    ):
        status = "abandoned"
    else:
        status = "resolved_by_bot"
    first = handoffs[0] if handoffs else None
    consulted = [t.knowledge for t in turns if t.role == "assistant" and t.knowledge]
    moods = [t for t in turns if t.role == "user" and t.valence is not None]
    score, parts = satisfaction(status, (up, down), turns)
    return Outcome(
        status=status, started_at=turns[0].at, ended_at=turns[-1].at, turns=len(turns),
        score=score, parts=parts, escalated=bool(handoffs), reasons=tuple(h.reason for h in handoffs),
        first_human_reply_s=_seconds(first.opened_at, first.first_reply_at) if first else None,
        handoff_s=_seconds(first.opened_at, handoffs[-1].resolved_at) if first else None,
        grounded=any(k != "none" for k in consulted) if consulted else None, thumbs=(up, down),
        start_valence=moods[0].valence if moods else None, end_valence=moods[-1].valence if moods else None,
        rating=next((ratings[t.id] for t in turns if ratings and t.id in ratings), None),
    )  # fmt: skip


def _seconds(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else max(0.0, (end - start).total_seconds())


def satisfaction(status: Status, thumbs: tuple[int, int], turns: Sequence[Turn]) -> tuple[int, tuple[Part, ...]]:
    """0-100 and its parts: 50, plus the last mood, the worst one, the thumbs and the outcome."""
    moods = [t for t in turns if t.role == "user" and t.valence is not None]
    parts: list[Part] = []
    if moods:
        first, last = moods[0], moods[-1]
        worst = min(moods, key=lambda t: t.valence or 0.0)
        end, low = last.valence or 0.0, worst.valence or 0.0
        if len(moods) == 1:
            parts.append(Part(f"mood {last.mood}", 50 * WEIGHTS["end"] * end))
        else:
            before = next((SPEAKERS[t.role] for t in reversed(turns) if t.id < last.id and t.role in SPEAKERS), "")
            parts.append(Part(f"started {first.mood}", 0))
            parts.append(Part(f"ended {last.mood}" + (f" after {before}" if before else ""), 50 * WEIGHTS["end"] * end))
        if low <= NEGATIVE_END / 2:
            where = "at its end" if worst is last else f"at message {moods.index(worst) + 1}"
            parts.append(Part(f"worst {worst.mood} {where}", 50 * WEIGHTS["worst"] * low))
    up, down = thumbs
    if up + down:
        parts.append(Part(f"{up} thumbs up, {down} down", 50 * WEIGHTS["feedback"] * (up - down) / (up + down)))
    parts.append(Part(status.replace("_", " "), OUTCOME_POINTS[status]))
    return max(0, min(100, round(50 + sum(p.points for p in parts)))), tuple(parts)
