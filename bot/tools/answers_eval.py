"""`tonebot eval-answers KB_DIR QUESTIONS.jsonl`: the knowledge base imported into a scratch database,
every question asked in a fresh conversation through the real pipeline (mood, escalation, knowledge,
the configured model), graded as the data/kb README suggests: answerable questions answered with
every key fact (`must_include`, case-insensitive, any of each fact's forms), unanswerable ones
answered honestly (not grounded, none of `must_not_include`), source recall@3, latency; per language
and mood. The no-model baseline (the best passage returned as is) is graded on the same rows."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bot import app, migrate
from bot.config import Settings
from bot.knowledge import open_knowledge
from bot.tools.datasets import split_of
from core.bot import Bot
from core.db import Database
from core.engine import Health
from core.events import ChatMessage, ConversationKey, IncomingMessage, Mood, Reply
from core.knowledge import Knowledge, public_id
from core.knowledge.text import CJK
from core.memory import Memory


class NoModel:
    """`--no-model`: every mood neutral, no generated text (the knowledge path needs no model)."""

    def health(self) -> Health:
        return Health("ready")

    async def classify(self, texts: Sequence[str]) -> list[Mood]:
        return [Mood.from_scores({"negative": 0.0, "neutral": 1.0, "positive": 0.0}) for _ in texts]

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        return
        yield ""  # pragma: no cover

    async def aclose(self) -> None:
        pass


def grade(question: dict[str, Any], text: str, grounded: bool) -> bool:
    reply = text.lower()
    invented = any(form.lower() in reply for form in question.get("must_not_include", []))
    if not question["answerable"]:
        return not grounded and not invented
    facts = all(any(form.lower() in reply for form in forms) for forms in question["must_include"])
    return grounded and facts and not invented


async def run(
    settings: Settings, kb: Path, questions_path: Path, split: str = "all", no_model: bool = False
) -> dict[str, Any]:
    questions = [json.loads(line) for line in questions_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if split != "all":
        questions = [q for q in questions if split_of(q["id"]) == split]
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'answers.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        configured = dataclasses.replace(settings, memory=dataclasses.replace(settings.memory, url=url))
        db = Database.open(url)
        knowledge = open_knowledge(db, configured)
        started = time.perf_counter()
        imported = await knowledge.add(sources(kb, questions_path))
        import_s = time.perf_counter() - started
        engine = NoModel() if no_model else await app.open_engine(settings.model, settings.sentiment)
        bot = Bot(engine, Memory(db), settings.prompts, configured.memory, settings.escalation,  # type: ignore[arg-type]
                  knowledge=knowledge)  # fmt: skip
        try:
            rows = [await ask(bot, knowledge, q, n) for n, q in enumerate(questions)]
        finally:
            await engine.aclose()
            await db.aclose()
    report = summary(rows)
    report.update(questions=len(rows), split=split, model="none" if no_model else settings.model.id,
                  embedder=settings.knowledge.embedder, import_seconds=round(import_s, 2),
                  import_errors=[f"{r.path}: {r.error}" for r in imported if r.error], results=rows)  # fmt: skip
    return report


def sources(kb: Path, questions: Path) -> list[Path]:
    """What the knowledge base is: the directory's files and folders, without the questions file and
    the directory's own README (it describes the set, and would answer about it)."""
    if not kb.is_dir():
        return [kb]
    return [p for p in sorted(kb.iterdir()) if not p.name.startswith(".")
            and not p.name.lower().startswith("readme") and p.resolve() != questions.resolve()]  # fmt: skip


async def ask(bot: Bot, knowledge: Knowledge, question: dict[str, Any], n: int) -> dict[str, Any]:
    msg = IncomingMessage(ConversationKey("eval", f"q{n}"), user_id="customer", text=question["text"])
    started, first, reply = time.perf_counter(), None, None
    async for item in bot.stream(msg):
        if isinstance(item, str) and first is None:
            first = time.perf_counter() - started
        if isinstance(item, Reply):
            reply = item
    assert reply is not None
    total = time.perf_counter() - started
    hits = await knowledge.search(question["text"], k=3)
    documents = {d.id: d for d in await knowledge.store.documents()}
    found = [public_id(documents[h.passage.document_id].source, h.passage.kind) for h in hits]
    best = hits[0].passage.text if hits else ""
    return {
        "id": question["id"], "answerable": question["answerable"], "mood": question.get("mood", ""),
        "language": "zh" if CJK.search(question["text"]) else "en",
        "passed": grade(question, reply.text, reply.grounded),
        "baseline_passed": grade(question, best, bool(best)),
        "recall_at_3": any(s in found for s in question.get("sources", [])) if question.get("sources") else None,
        "grounded": reply.grounded, "escalated": reply.escalated, "sources": [s.id for s in reply.sources],
        "read_mood": reply.mood.label if reply.mood else None,
        "first_text_s": round(first or total, 3), "total_s": round(total, 3), "reply": reply.text,
    }  # fmt: skip


def rate(rows: list[dict[str, Any]], key: str = "passed") -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(sum(values) / len(values), 3) if values else None


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answerable, unanswerable = [r for r in rows if r["answerable"]], [r for r in rows if not r["answerable"]]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(f"language {r['language']}", []).append(r)
        groups.setdefault(f"mood {r['mood']}", []).append(r)
    latencies = sorted(r["total_s"] for r in rows) or [0.0]
    latency = {
        "first_text_p50": statistics.median(r["first_text_s"] for r in rows) if rows else 0,
        "total_p50": statistics.median(latencies),
        "total_p95": latencies[int(0.95 * (len(latencies) - 1))],
    }
    by_group = {
        name: {"n": len(g), "answerable": rate([r for r in g if r["answerable"]]),
               "unanswerable": rate([r for r in g if not r["answerable"]])}
        for name, g in sorted(groups.items())
    }  # fmt: skip
    return {
        "answerable_every_fact": rate(answerable), "unanswerable_honest": rate(unanswerable),
        "wrong_answer_rate": rate([{"x": r["grounded"] and not r["passed"]} for r in rows], "x"),
        "source_recall_at_3": rate(answerable, "recall_at_3"),
        "baseline": {"answerable_every_fact": rate(answerable, "baseline_passed"),
                     "unanswerable_honest": rate(unanswerable, "baseline_passed")},
        "latency": latency, "groups": by_group,
    }  # fmt: skip


def table(report: dict[str, Any]) -> str:
    base, lat = report["baseline"], report["latency"]
    lines = [
        f"{report['questions']} questions ({report['split']}), model {report['model']}, embedder {report['embedder']};"
        f" import {report['import_seconds']} s",
        f"answerable, every key fact: {report['answerable_every_fact']}   unanswerable, honest: "
        f"{report['unanswerable_honest']}   wrong answers: {report['wrong_answer_rate']}   source recall@3: "
        f"{report['source_recall_at_3']}",
        f"baseline (best passage as is, no model): answerable {base['answerable_every_fact']}, honest "
        f"{base['unanswerable_honest']}",
        f"latency: first text p50 {lat['first_text_p50']:.2f} s, whole answer p50 {lat['total_p50']:.2f} s,"
        f" p95 {lat['total_p95']:.2f} s",
        *(
            f"  {name:<18} n={g['n']:<3} answerable {g['answerable']}  honest {g['unanswerable']}"
            for name, g in report["groups"].items()
        ),
    ]
    misses = [r for r in report["results"] if not r["passed"]]
    lines += [f"MISS {r['id']:<6} {'answerable' if r['answerable'] else 'unanswerable':<12} "
              f"{r['reply'][:110]!r}" for r in misses]  # fmt: skip
    return "\n".join(lines)
