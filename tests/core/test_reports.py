"""The outcome report on both databases: episodes written with known outcomes, then counted, timed,
grouped, written as CSV, and still counted (without content) after /forget."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.tools.report import table, write_csv
from core import metrics
from core.bot import Bot
from core.errors import InvalidMessage
from core.escalations import Escalation
from core.events import utcnow
from core.feedback import Feedback
from core.insights import since_of
from core.memory import Conversation, Memory, Message
from core.reports import build
from tests.auxil.postgres import on_both_databases  # noqa: F401  (the fixture: SQLite and PostgreSQL)

NEG = {"negative": 0.9, "neutral": 0.08, "positive": 0.02}
NEU = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
POS = {"negative": 0.02, "neutral": 0.1, "positive": 0.88}


def mood(scores: dict[str, float] | None) -> dict[str, object]:
    label = max(scores, key=lambda k: scores[k]) if scores else None
    return {"mood_scores": scores, "mood_label": label, "mood_score": scores[label] if scores and label else None}


async def write(memory: Memory, now: datetime) -> None:
    """Five conversations, one outcome each (c5 is older than the report's week)."""
    conversations = [(1, "telegram"), (2, "slack"), (3, "web"), (4, "web"), (5, "telegram")]
    at = {1: now - timedelta(days=3), 2: now - timedelta(days=2), 3: now - timedelta(days=2),
          4: now - timedelta(hours=1), 5: now - timedelta(days=10)}  # fmt: skip
    blank = {"author_name": "", "reply_to_id": None, "knowledge": None, "sources": None, "mood_label": None,
             "mood_score": None}  # fmt: skip
    m = lambda id_, c, role, minutes, **kw: {**blank, "id": id_, "conversation_id": c, "role": role,  # noqa: E731
        "author_id": kw.pop("author", f"u{c}" if role == "user" else "tonebot"), "text": kw.pop("text", "hello"),
        "created_at": at[c] + timedelta(minutes=minutes), **mood(kw.pop("scores", None)), **kw}  # fmt: skip
    messages = [
        m(10, 1, "user", 0, scores=NEU, text="Do you ship to Canada?"),
        m(11, 1, "assistant", 1, knowledge="passages", sources=[{"id": "kb:1", "title": "Shipping", "url": ""}]),
        m(20, 2, "user", 0, scores=NEG), m(21, 2, "assistant", 1), m(22, 2, "agent", 6, author="dana"),
        m(23, 2, "user", 8, scores=POS),
        m(30, 3, "user", 0, scores=NEU, text="Do you sell gift cards?"),
        m(31, 3, "assistant", 1, knowledge="none", reply_to_id=30),
        m(32, 3, "user", 2, scores=NEG), m(33, 3, "assistant", 3),
        m(40, 4, "user", 0, scores=NEU), m(41, 4, "assistant", 1),
        m(50, 5, "user", 0, scores=NEU), m(51, 5, "assistant", 1),
    ]  # fmt: skip
    async with memory.engine.begin() as connection:
        await connection.execute(Conversation.__table__.insert(), [
            {"id": c, "platform": p, "chat_id": f"chat{c}", "thread_id": "", "context_from": 0, "created_at": at[c]}
            for c, p in conversations])  # fmt: skip
        await connection.execute(Message.__table__.insert(), messages)
        await connection.execute(Escalation.__table__.insert(), [{"conversation_id": 2, "reason": "high_negative",
            "scores": [], "opened_at": at[2] + timedelta(minutes=1), "first_reply_at": at[2] + timedelta(minutes=6),
            "resolved_at": at[2] + timedelta(minutes=31)}])  # fmt: skip
        given = [(11, 1, "thumb", -1), (21, 2, "rating", 5), (41, 4, "rating", 3), (33, 3, "rating", 1)]
        await connection.execute(Feedback.__table__.insert(), [
            {"message_id": m, "conversation_id": c, "author_id": f"u{c}", "kind": kind, "value": v,
             "created_at": at[c], "updated_at": at[c]} for m, c, kind, v in given])  # fmt: skip


async def test_the_report_counts_each_outcome_and_keeps_forgotten_ones_without_content(
    memory: Memory, scriptbot: Bot, tmp_path: Path
) -> None:
    now = utcnow()
    await write(memory, now)
    report = await build(memory, now - timedelta(days=7), now, 24, by="platform")
    total = report.total
    assert total.conversations == 4  # c5 started before the week
    assert total.outcomes == {"resolved_by_bot": 1, "resolved_by_person": 1, "abandoned": 1, "open": 1,
                              "with_person": 0}  # fmt: skip
    assert (total.escalated, total.reasons) == (1, {"high_negative": 1})
    assert (total.thumbs_up, total.thumbs_down, total.grounded) == (0, 1, 1)
    assert total.first_human_reply_p50_s == total.first_human_reply_p90_s == 300
    assert total.moods["start"] == {"neutral": 3, "negative": 1} and total.moods["end"]["positive"] == 1
    assert [(g.key, g.conversations) for g in report.groups] == [("slack", 1), ("telegram", 1), ("web", 2)]
    assert report.unanswered == [("do you sell gift cards?", 1)]
    assert report.to_review == [("kb:1", "Shipping", 1)]
    assert report.lowest[0]["status"] == "abandoned" and "ended negative 0.90" in report.lowest[0]["why"]
    assert "resolved by person 1 (25%)" in table(report)
    assert (total.ratings, total.rating_mean) == (3, 3.0)  # the ratings agree with the scores' order:
    assert total.score_vs_rating == 1.0 and "Spearman with the score 1.00" in table(report)

    write_csv(report, tmp_path / "report.csv")
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [r["group"] for r in rows] == ["slack", "telegram", "web"] and rows[2]["abandoned_rate"] == "0.5"

    assert await scriptbot.forget("web", "u3") == 4
    after = await build(memory, now - timedelta(days=7), now, 24, by="day")
    assert after.total.conversations == 4 and after.total.outcomes["abandoned"] == 1  # counted, kept without text
    assert after.unanswered == [] and all(o["status"] != "abandoned" for o in after.lowest)
    assert sum(g.conversations for g in after.groups) == 4


@pytest.mark.parametrize(("text", "days"), [("7d", 7), ("24h", 1), ("2w", 14), ("90m", 90 / 1440)])
def test_since_takes_a_span_or_a_date(text: str, days: float) -> None:
    now = utcnow()
    assert abs((now - since_of(text, now)).total_seconds() - days * 86400) < 1
    assert since_of("2026-12-01", now).isoformat().startswith("2026-12-01T00:00:00")
    with pytest.raises(InvalidMessage, match="7d"):
        since_of("last week", now)


async def test_each_settled_episode_gets_one_log_line_and_the_gauges_the_week(
    memory: Memory, scriptbot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    now = utcnow()
    await write(memory, now)
    scriptbot.insights._logged_until = now - timedelta(days=10)  # as if serving since then
    with caplog.at_level("INFO", logger="core.insights"):
        await scriptbot.insights.refresh()
        await scriptbot.insights.refresh()  # nothing settled since: no line twice
    lines = [r for r in caplog.records if r.getMessage() == "conversation outcome"]
    assert sorted((r.platform, r.outcome) for r in lines) == [  # type: ignore[attr-defined]
        ("slack", "resolved_by_person"), ("telegram", "resolved_by_bot"), ("web", "abandoned")]  # fmt: skip
    assert all("hello" not in r.why and "gift" not in r.why for r in lines)  # type: ignore[attr-defined]
    assert metrics.OUTCOMES.labels("open")._value.get() == 1 and metrics.SATISFACTION._value.get() > 0
