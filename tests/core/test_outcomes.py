"""Outcomes and the satisfaction score: transitions on hand-written turns, and the order of the
scripted conversations (tests/data/outcomes/scripted.jsonl, tiers written before the score was) with
the moods the real embedded model reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import spearmanr

from core.local.engine import TransformersEngine
from core.outcomes import Episode, Handoff, Turn, episodes, outcome_of

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NEG = {"negative": 0.9, "neutral": 0.08, "positive": 0.02}
NEU = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
POS = {"negative": 0.02, "neutral": 0.1, "positive": 0.88}
SCRIPTED = Path(__file__).parents[1] / "data" / "outcomes" / "scripted.jsonl"


def turns(*spec: tuple[str, dict[str, float] | None], minutes: float = 1.0) -> list[Turn]:
    return [Turn.of(n + 1, role, T0 + timedelta(minutes=n * minutes), scores if role == "user" else None)
            for n, (role, scores) in enumerate(spec)]  # fmt: skip


def test_an_answered_question_is_open_for_the_return_window_then_resolved_by_the_bot() -> None:
    episode = Episode(turns(("user", NEU), ("assistant", None)))
    assert outcome_of(episode, T0 + timedelta(hours=2), return_hours=24).status == "open"
    later = outcome_of(episode, T0 + timedelta(hours=25), return_hours=24)
    assert later.status == "resolved_by_bot"
    assert later.score == 55 and later.explanation == "mood neutral 0.80; resolved by bot (+5)"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ((("user", NEU),), "never answered"),
        ((("user", NEU), ("assistant", None), ("user", NEG)), "the last customer turn unanswered"),
        ((("user", NEG), ("assistant", None)), "ended negative"),
    ],
)
def test_silence_after_an_unanswered_or_negative_turn_is_abandoned(spec: Any, why: str) -> None:
    outcome = outcome_of(Episode(turns(*spec)), T0 + timedelta(days=2), return_hours=24)
    assert outcome.status == "abandoned", why
    assert outcome.score < 50


def test_a_request_for_a_person_nobody_answered_is_not_resolved_by_the_bot() -> None:
    spec = turns(("user", NEU), ("assistant", None))
    asked = [Turn.of(1, "user", T0, NEU, text="a person please"), spec[1]]
    outcome = outcome_of(Episode(asked), T0 + timedelta(days=2), 24, asks_for_human=lambda t: "person" in t)
    assert outcome.status == "abandoned"


def test_an_escalation_is_with_a_person_until_resolved_and_times_the_human_side() -> None:
    spec = turns(("user", NEG), ("assistant", None), ("agent", None), ("user", POS))
    waiting = Handoff(T0 + timedelta(minutes=1), "high_negative", first_reply_at=T0 + timedelta(minutes=4))
    assert outcome_of(Episode(spec, [waiting]), T0 + timedelta(days=3), 24).status == "with_person"
    done = Handoff(waiting.opened_at, "high_negative", waiting.first_reply_at, T0 + timedelta(minutes=31))
    outcome = outcome_of(Episode(spec, [done]), T0 + timedelta(days=3), 24)
    assert outcome.status == "resolved_by_person" and outcome.escalated and outcome.reasons == ("high_negative",)
    assert outcome.first_human_reply_s == 180 and outcome.handoff_s == 1800
    assert "started negative 0.90" in outcome.explanation
    assert "ended positive 0.88 after the agent's answer" in outcome.explanation
    assert "worst negative 0.90 at message 1" in outcome.explanation


def test_thumbs_move_the_score_and_are_counted() -> None:
    spec = Episode(turns(("user", NEU), ("assistant", None)))
    later = T0 + timedelta(days=2)
    up, down, none = (outcome_of(spec, later, 24, feedback=f) for f in ({2: 1}, {2: -1}, {}))
    assert up.thumbs == (1, 0) and down.thumbs == (0, 1)
    assert up.score > none.score > down.score


def test_a_customer_who_comes_back_after_the_window_starts_a_new_episode() -> None:
    first = turns(("user", NEG), ("assistant", None))
    back = [Turn.of(3, "user", T0 + timedelta(hours=30), POS), Turn.of(4, "assistant", T0 + timedelta(hours=30))]
    handoff = Handoff(T0 + timedelta(minutes=1), "high_negative", resolved_at=T0 + timedelta(hours=1))
    found = episodes(first + back, [handoff], return_hours=24)
    assert [len(e.turns) for e in found] == [2, 2]
    assert found[0].handoffs == [handoff] and found[1].handoffs == []
    soon = episodes([*first, Turn.of(3, "user", T0 + timedelta(hours=5), POS)], [], return_hours=24)
    assert len(soon) == 1  # came back within the window: the same episode, not resolved yet


def scripted() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SCRIPTED.read_text().splitlines() if line.strip()]


async def scored(engine: TransformersEngine) -> list[tuple[int, int, str]]:
    """(expected tier, score, explanation) for every scripted conversation, moods read by the model."""
    rows = scripted()
    texts = [text for row in rows for role, text in row["turns"] if role == "user"]
    moods = iter(await engine.classify(texts))
    found = []
    for row in rows:
        spec = [Turn.of(n + 1, role, T0 + timedelta(minutes=n), next(moods).scores if role == "user" else None)
                for n, (role, _) in enumerate(row["turns"])]  # fmt: skip
        handoffs = [Handoff(T0, "high_negative", T0 + timedelta(minutes=2), T0 + timedelta(hours=1) if row.get(
            "resolved") else None)] if row.get("escalated") else []  # fmt: skip
        feedback = {int(k) + 1: v for k, v in row.get("thumbs", {}).items()}
        outcome = outcome_of(Episode(spec, handoffs), T0 + timedelta(days=3), 24, feedback)
        found.append((row["tier"], outcome.score, f"{row['id']}: {outcome.score} ({outcome.explanation})"))
    return found


async def test_the_score_orders_the_scripted_conversations_as_written_down_first(engine: TransformersEngine) -> None:
    found = await scored(engine)
    tiers, scores = [t for t, _, _ in found], [s for _, s, _ in found]
    rho = spearmanr([-t for t in tiers], scores).statistic
    means = [sum(s for t, s, _ in found if t == tier) / tiers.count(tier) for tier in sorted(set(tiers))]
    report = "\n".join(line for _, _, line in found)
    assert means == sorted(means, reverse=True), f"tier means {means}\n{report}"
    assert rho >= 0.7, f"Spearman {rho:.2f}\n{report}"
    best, worst = [s for t, s, _ in found if t == 1], [s for t, s, _ in found if t == 4]
    assert min(best) > max(worst), report
