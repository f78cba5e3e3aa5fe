"""`tonebot bench --soak MINUTES [--think S]`: conversations chat through the whole pipeline (sentiment,
SQLite, reply) for MINUTES, each customer thinking S seconds on average (0.5-1.5x) between an answer
and their next message (`--think 0`: without pause, a saturation test); per interval, the messages,
latency p50 / p95 and RSS. A leak shows as RSS that keeps growing after the first interval; a
slowdown as a rising p95. The conversations are the capacity benchmark's (bot/tools/support_chats.py),
started again from their first turn, in the same conversation, when they end: histories keep growing."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bot.app import engine_kind, open_engine
from bot.config import Settings
from bot.tools.bench import percentile, pipeline, rss_now
from bot.tools.support_chats import CHATS
from core.events import ConversationKey, IncomingMessage

CONVERSATIONS = 4


async def run(
    settings: Settings, minutes: float, think: float = 0.0, conversations: int = CONVERSATIONS
) -> dict[str, Any]:
    kind = await asyncio.to_thread(engine_kind, settings.model)
    engine = await open_engine(settings.model, settings.sentiment)
    bot, memory, tmp = await pipeline(engine, settings)
    interval = min(60.0, minutes * 60 / 3)  # a minute, or a third of a short run
    deadline = time.monotonic() + minutes * 60  # the users stop starting messages here
    latencies: list[float] = []
    rows: list[dict[str, Any]] = []

    async def user(n: int) -> None:
        i, rng, chat = 0, random.Random(n), CHATS[n % len(CHATS)]
        await asyncio.sleep(rng.uniform(0, think))
        while time.monotonic() < deadline:  # each conversation keeps growing its history
            msg = IncomingMessage(ConversationKey("soak", f"c{n}"), f"u{n}", chat[i % len(chat)])
            started = time.perf_counter()
            await bot.handle(msg)
            latencies.append(time.perf_counter() - started)
            i += 1
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think)

    async def sample() -> None:
        started = time.monotonic()
        for k in range(1, math.ceil(minutes * 60 / interval - 1e-9) + 1):
            await asyncio.sleep(max(0.0, min(started + k * interval, deadline) - time.monotonic()))
            done, latencies[:] = list(latencies), []
            rows.append({"at_s": round(time.monotonic() - started), "messages": len(done),
                         "p50_s": statistics.median(done) if done else None,
                         "p95_s": percentile(done, 0.95) if done else None, "rss_bytes": rss_now()})  # fmt: skip

    try:
        await asyncio.gather(sample(), *(user(n) for n in range(conversations)))
    finally:
        await memory.aclose()
        tmp.cleanup()
        await engine.aclose()
    first, last = rows[0], rows[-1]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine": kind,
        "model": settings.model.id,
        "minutes": minutes,
        "conversations": conversations,
        "think_s": think,
        "intervals": rows,
        "rss_growth_after_first_interval": last["rss_bytes"] / first["rss_bytes"] - 1,
        "p95_first_s": first["p95_s"],
        "p95_last_s": last["p95_s"],
        # the first interval holds the start (empty caches); the second is the steady state to keep
        "p95_last_over_second": last["p95_s"] / rows[1]["p95_s"] if len(rows) > 2 and rows[1]["p95_s"] else None,
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        f"soak: {r['conversations']} conversations chatting for {r['minutes']:g} min, "
        + (f"thinking {r['think_s']:g} s between turns" if r["think_s"] else "without pause")
        + f" ({r['engine']}, {r['model']})",
        "   at s | messages | p50 s | p95 s | RSS MB",
        *(
            f"{row['at_s']:>7} | {row['messages']:>8} | {row['p50_s'] or 0:5.2f} | {row['p95_s'] or 0:5.2f} | "
            f"{row['rss_bytes'] / 1e6:6.0f}"
            for row in r["intervals"]
        ),
        f"RSS at the end vs after the first interval: {r['rss_growth_after_first_interval']:+.1%}; "
        f"p95 first / last interval: {r['p95_first_s'] or 0:.2f} / {r['p95_last_s'] or 0:.2f} s"
        + (f"; last / second: {r['p95_last_over_second']:.2f}x" if r.get("p95_last_over_second") else ""),
    ]
    return "\n".join(lines)
