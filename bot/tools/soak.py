"""`tonebot bench --soak MINUTES`: conversations chat without pause through the whole pipeline
(sentiment, SQLite, reply) for MINUTES; per interval, the messages, latency p50 / p95 and RSS.
A leak shows as RSS that keeps growing after the first interval; a slowdown as a rising p95."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bot.app import engine_kind, open_engine
from bot.config import Settings
from bot.tools.bench import SAMPLE, percentile, pipeline, rss_now
from core.events import ConversationKey, IncomingMessage

CONVERSATIONS = 4


async def run(settings: Settings, minutes: float, conversations: int = CONVERSATIONS) -> dict[str, Any]:
    kind = await asyncio.to_thread(engine_kind, settings.model)
    engine = await open_engine(settings.model, settings.sentiment)
    bot, memory, tmp = await pipeline(engine, settings)
    interval = min(60.0, minutes * 60 / 3)  # a minute, or a third of a short run
    deadline = time.monotonic() + minutes * 60  # the users stop starting messages here
    latencies: list[float] = []
    rows: list[dict[str, Any]] = []

    async def user(n: int) -> None:
        i = 0
        while time.monotonic() < deadline:  # each conversation keeps growing its history
            msg = IncomingMessage(ConversationKey("soak", f"c{n}"), f"u{n}", SAMPLE[(n + i) % len(SAMPLE)])
            started = time.perf_counter()
            await bot.handle(msg)
            latencies.append(time.perf_counter() - started)
            i += 1

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
        "intervals": rows,
        "rss_growth_after_first_interval": last["rss_bytes"] / first["rss_bytes"] - 1,
        "p95_first_s": first["p95_s"],
        "p95_last_s": last["p95_s"],
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        f"soak: {r['conversations']} conversations chatting for {r['minutes']:g} min ({r['engine']}, {r['model']})",
        "   at s | messages | p50 s | p95 s | RSS MB",
        *(
            f"{row['at_s']:>7} | {row['messages']:>8} | {row['p50_s'] or 0:5.2f} | {row['p95_s'] or 0:5.2f} | "
            f"{row['rss_bytes'] / 1e6:6.0f}"
            for row in r["intervals"]
        ),
        f"RSS at the end vs after the first interval: {r['rss_growth_after_first_interval']:+.1%}; "
        f"p95 first / last interval: {r['p95_first_s'] or 0:.2f} / {r['p95_last_s'] or 0:.2f} s",
    ]
    return "\n".join(lines)
