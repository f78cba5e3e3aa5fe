"""Generate N realistic support conversations (turns with moods, escalations with agents' replies,
thumbs, knowledge-base gaps) straight into a tonebot database, for timing `tonebot report` and the
console's Insights page on a deployment's worth of data (README "Outcomes").

    python scripts/outcome_data.py sqlite:///data/report-bench.db --conversations 10000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select

from bot import migrate
from core.db import Database
from core.escalations import Escalation
from core.events import utcnow
from core.feedback import Feedback
from core.memory import Conversation, Message

PROFILES = {  # how a customer's mood goes, turn by turn (valence from -1 to 1), and how often
    "satisfied": ([0.0, 0.6], 0.35),
    "plain": ([0.0], 0.25),
    "recovered": ([-0.8, -0.3, 0.5], 0.15),
    "angry": ([-0.7, -0.9], 0.15),
    "gave_up": ([-0.3, -0.6], 0.10),
}
BLANK = {
    "author_name": "",
    "reply_to_id": None,
    "knowledge": None,
    "mood_scores": None,
    "mood_label": None,
    "mood_score": None,
    "sources": None,
}
QUESTIONS = [
    "Where is my order?",
    "How do I reset my password?",
    "Do you ship to Canada?",
    "Can I get a refund?",
    "How do I change my address?",
    "Is there a student discount?",
    "Why was I charged twice?",
]


def mood(valence: float, rng: random.Random) -> dict[str, Any]:
    """A stored mood's three columns (as Memory.set_mood writes them) around a valence."""
    found = scores(valence, rng)
    label = max(found, key=lambda k: found[k])
    return {"mood_scores": found, "mood_label": label, "mood_score": found[label]}


def scores(valence: float, rng: random.Random) -> dict[str, float]:
    v = max(-0.98, min(0.98, valence + rng.uniform(-0.15, 0.15)))
    neutral = max(0.01, 1 - abs(v)) * 0.9
    positive, negative = max(0.005, v) + (1 - neutral - abs(v)) / 2, max(0.005, -v) + (1 - neutral - abs(v)) / 2
    total = positive + negative + neutral
    return {"negative": negative / total, "neutral": neutral / total, "positive": positive / total}


def conversation(cid: int, now: datetime, days: int, rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    """One conversation's rows: the conversation, its turns, its escalation, its thumbs."""
    at = now - timedelta(days=rng.uniform(0, days))
    rows: dict[str, list[dict[str, Any]]] = {"messages": [], "escalations": [], "feedback": []}
    rows["conversations"] = [
        {
            "id": cid,
            "platform": rng.choice(["telegram", "slack", "web"]),
            "chat_id": f"bench-{cid}",
            "thread_id": "",
            "context_from": 0,
            "created_at": at,
        }
    ]
    profile = rng.choices(list(PROFILES), [w for _, w in PROFILES.values()])[0]
    path, message_id = PROFILES[profile][0], cid * 100

    def turn(role: str, text: str, when: datetime, **more: Any) -> int:
        nonlocal message_id
        message_id += 1
        rows["messages"].append(
            {
                **BLANK,
                "id": message_id,
                "conversation_id": cid,
                "role": role,
                "text": text,
                "author_id": f"u{cid}" if role == "user" else role,
                "created_at": when,
                **more,
            }
        )
        return message_id

    for n, valence in enumerate(path):
        text = rng.choice(QUESTIONS) if n == 0 else "thanks" if valence > 0.3 else "still not working"
        asked = turn("user", text, at, **mood(valence, rng))
        at += timedelta(seconds=rng.uniform(2, 8))
        if profile == "gave_up" and n == len(path) - 1:
            break  # left without an answer
        knowledge = rng.choices(["none", "passages", None], [0.05, 0.3, 0.65])[0]
        answer = turn("assistant", "an answer", at, reply_to_id=asked, knowledge=knowledge)
        if rng.random() < 0.12:
            rows["feedback"].append(
                {
                    "message_id": answer,
                    "conversation_id": cid,
                    "author_id": f"u{cid}",
                    "value": 1 if valence >= 0 else -1,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        at += timedelta(minutes=rng.uniform(0.5, 10))
    if profile in ("angry", "recovered") and rng.random() < 0.6:
        opened = at - timedelta(minutes=5)
        reply = opened + timedelta(minutes=rng.lognormvariate(1.5, 0.8))
        resolved = reply + timedelta(minutes=rng.uniform(5, 60)) if rng.random() < 0.85 else None
        reason = rng.choice(["high_negative", "asked_for_human", "repeated_negative"])
        rows["escalations"].append(
            {
                "conversation_id": cid,
                "reason": reason,
                "scores": [],
                "opened_at": opened,
                "first_reply_at": reply,
                "resolved_at": resolved,
            }
        )
        turn("agent", "I've fixed it for you.", reply, author_name="Dana")
    return rows


async def generate(url: str, n: int, days: int, seed: int) -> dict[str, int]:
    await asyncio.to_thread(migrate.upgrade, url)
    db, rng, now = Database.open(url), random.Random(seed), utcnow()
    tables = {"conversations": Conversation, "messages": Message, "escalations": Escalation, "feedback": Feedback}
    async with db.engine.begin() as connection:
        first = await connection.scalar(select(func.coalesce(func.max(Conversation.id), 0)))
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
        for cid in range(first + 1, first + n + 1):
            for name, found in conversation(cid, now, days, rng).items():
                rows[name] += found
        for name, table in tables.items():
            for start in range(0, len(rows[name]), 2000):
                await connection.execute(table.__table__.insert(), rows[name][start : start + 2000])
    await db.aclose()
    return {name: len(found) for name, found in rows.items()}


async def timed(url: str, runs: int = 3) -> None:
    """How long `tonebot report` (the last 14 days, by day) takes on this database, and the Insights
    page in headless Chromium from a cold start (the week's report computed on the first request)."""
    from datetime import timedelta

    import uvicorn
    from playwright.async_api import async_playwright

    from bot.adapters.web import create_app
    from bot.app import Loading
    from bot.config import Secrets, load_settings
    from core.bot import Bot
    from core.memory import Memory
    from core.phrases import asks_for_human
    from core.reports import build

    settings = load_settings(environ={"TONEBOT_MEMORY__URL": url})
    memory = Memory.open(url)
    for n in range(runs):
        now, started = utcnow(), time.perf_counter()
        asks = partial(asks_for_human, settings=settings.escalation)  # as `tonebot report` checks them
        report = await build(memory, now - timedelta(days=14), now, 24, "day", asks)
        print(f"report run {n + 1}: {time.perf_counter() - started:.2f} s ({report.total.conversations} conversations)")
    bot = Bot(Loading(), memory, settings.prompts, settings.memory, settings.escalation)  # type: ignore[arg-type]
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(bot, secrets=Secrets(operator_token="bench")), port=8093, log_level="warning", lifespan="off"
        )
    )
    serving, base = asyncio.create_task(server.serve()), "http://127.0.0.1:8093"
    while not server.started:
        await asyncio.sleep(0.01)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=flags)
        for n, cold in enumerate([True, False, True, False]):
            if cold:
                bot.insights._week = None  # the week's report computed for this request (else: serve's last round)
            page = await browser.new_page()
            await page.goto(f"{base}/insights")
            started = time.perf_counter()
            await page.fill("#token", "bench")
            await page.click("button[type=submit]")
            await page.wait_for_selector("#status[data-ms]")
            await page.wait_for_function("document.querySelectorAll('.uplot').length == 3")
            took = time.perf_counter() - started
            print(f"insights page, {'cold' if cold else 'warm'}: {took:.2f} s from the click to the 3 charts drawn")
            if n == 0:
                await page.screenshot(path="/tmp/insights.png", full_page=True)
            await page.close()
        await browser.close()
    server.should_exit = True
    await serving
    await memory.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the database URL (created and migrated if new)")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14, help="spread over the last N days")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time", action="store_true", help="only time the report and the Insights page on it")
    args: Any = parser.parse_args(argv)
    if args.time:
        asyncio.run(timed(args.url))
        return
    started = time.perf_counter()
    counts = asyncio.run(generate(args.url, args.conversations, args.days, args.seed))
    print(", ".join(f"{n} {name}" for name, n in counts.items()), f"written in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
