"""`tonebot report`: outcomes, satisfaction, feedback and hand-off times of a period (core/reports.py),
as a table, JSON or CSV (a row per group)."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

from bot.config import Settings
from core.events import utcnow
from core.figures import Report
from core.insights import since_of
from core.phrases import asks_for_human
from core.reports import By, build


async def run(settings: Settings, since: str, by: By) -> Report:
    from bot import migrate
    from core.memory import Memory

    await asyncio.to_thread(migrate.upgrade, settings.memory.url)
    memory, now = Memory.open(settings.memory.url), utcnow()
    policy = settings.escalation
    try:
        return await build(memory, since_of(since, now), now, settings.outcome.return_hours, by,
                           lambda text: asks_for_human(text, policy))  # fmt: skip
    finally:
        await memory.aclose()


def write_csv(report: Report, path: Path) -> None:
    rows = [g.row() for g in report.groups] or [report.total.row()]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def table(report: Report) -> str:
    t = report.total
    pct = lambda n: f"{n / t.conversations:.0%}" if t.conversations else "-"  # noqa: E731
    seconds = lambda s: "-" if s is None else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"  # noqa: E731
    lines = [
        f"conversations {report.since:%Y-%m-%d %H:%M} – {report.until:%Y-%m-%d %H:%M} UTC: {t.conversations}",
        "  " + ", ".join(f"{s.replace('_', ' ')} {n} ({pct(n)})" for s, n in t.outcomes.items()),
        f"  escalated {t.escalated} ({pct(t.escalated)})"
        + (": " + ", ".join(f"{r} {n}" for r, n in t.reasons.items()) if t.reasons else ""),
        f"  satisfaction mean {t.score_mean:.1f} / 100" if t.score_mean is not None else "  satisfaction: -",
        "    " + "  ".join(f"{band}: {n}" for band, n in t.scores.items()),
        f"  feedback 👍 {t.thumbs_up}  👎 {t.thumbs_down}",
        f"  ratings after a hand-off: {t.ratings}"
        + (f", mean {t.rating_mean:.2f} / 5" if t.rating_mean is not None else "")
        + (f", Spearman with the score {t.score_vs_rating:.2f}" if t.score_vs_rating is not None else ""),
        f"  first human reply p50 {seconds(t.first_human_reply_p50_s)}, p90 {seconds(t.first_human_reply_p90_s)}",
        f"  answered from the knowledge base in {t.grounded} ({pct(t.grounded)})",
    ]
    if report.groups:
        columns = ("conversations", "resolved_by_bot_rate", "resolved_by_person_rate", "abandoned_rate",
                   "escalation_rate", "satisfaction_mean", "thumbs_up", "thumbs_down")  # fmt: skip
        lines += ["", "group".ljust(12) + "".join(c.replace("_rate", " %")[:16].rjust(17) for c in columns)]
        for group in report.groups:
            row = group.row()
            cells = [_cell(row[c], c.endswith("_rate")) for c in columns]
            lines.append(str(row["group"])[:12].ljust(12) + "".join(c.rjust(17) for c in cells))
    if report.unanswered:
        lines += ["", "most asked, not in the knowledge base:"]
        lines += [f"  {n:4}  {text[:100]}" for text, n in report.unanswered[:10]]
    if report.to_review:
        lines += ["", "knowledge-base sources of answers given 👎 (review them):"]
        lines += [f"  {n:4}  {title or id_} ({id_})" for id_, title, n in report.to_review[:10]]
    if report.lowest:
        lines += ["", "least satisfied (why):"]
        lines += [f"  {o['score']:3}  {o['started_at'][:16]}  {o['status']}: {o['why']}" for o in report.lowest[:5]]
    return "\n".join(lines)


def _cell(value: object, rate: bool) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if rate and isinstance(value, float) else str(value)


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)
