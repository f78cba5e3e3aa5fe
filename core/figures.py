"""The figures of a group of conversation episodes (a day, a platform, all of a period): counts by
outcome, rates, the satisfaction score's mean and distribution, thumbs, ratings and how they agree
with the score, the first human reply's p50 / p90. What `tonebot report` prints and the Insights
page draws (core/reports.py gathers the episodes)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from core.outcomes import STATUSES, Outcome

BANDS = ("0-19", "20-39", "40-59", "60-79", "80-100")  # satisfaction score distribution


@dataclass
class Group:
    """The figures of one group of episodes (a day, a platform, or all)."""

    key: str
    conversations: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    escalated: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    score_mean: float | None = None
    scores: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BANDS, 0))
    thumbs_up: int = 0
    thumbs_down: int = 0
    first_human_reply_p50_s: float | None = None
    first_human_reply_p90_s: float | None = None
    grounded: int = 0  # episodes the knowledge base answered in
    moods: dict[str, dict[str, int]] = field(default_factory=lambda: {"start": {}, "end": {}})
    ratings: int = 0  # answers to the rating question (outcome.ask_rating)
    rating_mean: float | None = None
    score_vs_rating: float | None = None  # Spearman's rank correlation of the score with the rating (3+ pairs)

    def rate(self, status: str) -> float | None:
        return self.outcomes[status] / self.conversations if self.conversations else None

    def row(self) -> dict[str, Any]:
        """One flat row (CSV): counts, rates and the score."""
        done = {f"{s}_rate": _round(self.rate(s)) for s in ("resolved_by_bot", "resolved_by_person", "abandoned")}
        escalation = self.escalated / self.conversations if self.conversations else None
        waits = {"first_human_reply_p50_s": self.first_human_reply_p50_s, "first_human_reply_p90_s":
                 self.first_human_reply_p90_s}  # fmt: skip
        return {"group": self.key, "conversations": self.conversations, **self.outcomes, **done,
                "escalation_rate": _round(escalation), "satisfaction_mean": _round(self.score_mean, 1),
                "thumbs_up": self.thumbs_up, "thumbs_down": self.thumbs_down,
                **{k: _round(v, 1) for k, v in waits.items()}, "grounded": self.grounded, "ratings": self.ratings,
                "rating_mean": _round(self.rating_mean, 2),
                "score_vs_rating": _round(self.score_vs_rating)}  # fmt: skip


@dataclass
class Report:
    since: datetime
    until: datetime
    total: Group
    groups: list[Group]
    unanswered: list[tuple[str, int]]  # questions the knowledge base had no answer for, most asked first
    to_review: list[tuple[str, str, int]]  # knowledge sources of answers given a thumb down
    lowest: list[dict[str, Any]] = field(default_factory=list)  # the least satisfied episodes, explained
    episodes: list[tuple[str, Outcome]] = field(default_factory=list, repr=False)  # (platform, outcome): not shown

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "total": asdict(self.total),
                "groups": [asdict(g) for g in self.groups], "unanswered": self.unanswered,
                "to_review": self.to_review, "lowest": self.lowest}  # fmt: skip


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarize(key: str, outcomes: Sequence[Outcome]) -> Group:
    group = Group(key, conversations=len(outcomes))
    reasons: Counter[str] = Counter()
    waits = [o.first_human_reply_s for o in outcomes if o.first_human_reply_s is not None]
    for o in outcomes:
        group.outcomes[o.status] += 1
        group.escalated += o.escalated
        reasons.update(o.reasons)
        group.scores[BANDS[min(o.score // 20, 4)]] += 1
        group.thumbs_up, group.thumbs_down = group.thumbs_up + o.thumbs[0], group.thumbs_down + o.thumbs[1]
        group.grounded += bool(o.grounded)
        for when, valence in (("start", o.start_valence), ("end", o.end_valence)):
            if valence is not None:
                mood = "negative" if valence <= -0.2 else "positive" if valence >= 0.2 else "neutral"
                group.moods[when][mood] = group.moods[when].get(mood, 0) + 1
    group.reasons = dict(reasons.most_common())
    group.score_mean = statistics.fmean(o.score for o in outcomes) if outcomes else None
    rated = [(o.score, o.rating) for o in outcomes if o.rating is not None]
    group.ratings, group.rating_mean = len(rated), statistics.fmean(r for _, r in rated) if rated else None
    if len(rated) >= 3 and len({s for s, _ in rated}) > 1 and len({r for _, r in rated}) > 1:
        from scipy.stats import spearmanr

        group.score_vs_rating = float(spearmanr([s for s, _ in rated], [r for _, r in rated]).statistic)
    if waits:
        group.first_human_reply_p50_s = statistics.median(waits)
        group.first_human_reply_p90_s = (
            statistics.quantiles(waits, n=10, method="inclusive")[8] if len(waits) > 1 else waits[0]
        )
    return group
