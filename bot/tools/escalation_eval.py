"""`tonebot eval-escalation`: scripted support conversations, each turn through the real pipeline
(the Bot with the configured model, storage in a scratch SQLite file, the escalation policy),
scored against whether a support team would want a person by the last turn.

Input: JSON Lines `{"id", "turns": [user messages], "escalate": true|false}`. Replies are kept
short (they are not what is measured). Output: precision, recall, and for every conversation the
moods per turn, the turn that escalated and the rule that fired.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

from bot import migrate
from bot.config import Settings
from core.bot import Bot
from core.engine import Engine
from core.errors import ConfigError
from core.events import ConversationKey, IncomingMessage
from core.memory import Memory
from core.settings import ModelSettings

REPLY_TOKENS = 4


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ConfigError(f"no such file: {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        if not isinstance(row.get("turns"), list) or not isinstance(row.get("escalate"), bool):
            raise ConfigError(f"{path}: each line needs 'turns' (a list) and 'escalate' (true or false)")
    return rows


async def run(settings: Settings, path: Path) -> dict[str, Any]:
    from bot.app import open_engine

    conversations = read(path)
    model: ModelSettings = dataclasses.replace(settings.model, max_new_tokens=REPLY_TOKENS)
    engine = await open_engine(model, settings.sentiment, settings.secrets.inference_api_key)
    try:
        return {"file": str(path), **await evaluate(engine, settings, conversations)}
    finally:
        await engine.aclose()


async def evaluate(engine: Engine, settings: Settings, conversations: list[dict[str, Any]]) -> dict[str, Any]:
    """Every conversation through a Bot on `engine`, with the configured policy, in a scratch database."""
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'eval.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        memory = Memory.open(url)
        bot = Bot(engine, memory, settings.prompts, settings.memory, settings.escalation)
        try:
            return score([await _converse(bot, conversation) for conversation in conversations])
        finally:
            await memory.aclose()


async def _converse(bot: Bot, conversation: dict[str, Any]) -> dict[str, Any]:
    key = ConversationKey("eval", str(conversation.get("id", "")))
    turns, escalated_at = [], None
    for number, text in enumerate(conversation["turns"], 1):
        reply = await bot.handle(IncomingMessage(key, user_id="customer", text=text))
        mood = reply.mood
        turns.append(
            {
                "text": text,
                "mood": mood.label if mood else None,
                "negative": round(mood.scores["negative"], 3) if mood else None,
            }
        )
        if reply.escalated and escalated_at is None:
            escalated_at = number
    cases = [c for c in await bot.handoff.cases(open_only=False) if c.escalation.key == key]
    return {
        "id": key.chat_id,
        "lang": conversation.get("lang", ""),
        "expected": conversation["escalate"],
        "escalated": escalated_at is not None,
        "turn": escalated_at,
        "rule": cases[0].escalation.reason if cases else None,
        "turns": turns,
    }


def score(results: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(r["expected"] and r["escalated"] for r in results)
    fp = sum(r["escalated"] and not r["expected"] for r in results)
    fn = sum(r["expected"] and not r["escalated"] for r in results)
    return {
        "conversations": len(results),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "misses": [r for r in results if r["expected"] != r["escalated"]],
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['conversations']} conversations: precision {report['precision']:.2f}, recall {report['recall']:.2f}"
        f" ({report['true_positives']} caught, {report['false_positives']} false alarms,"
        f" {report['false_negatives']} missed)"
    ]
    for r in report["results"]:
        verdict = "ok  " if r["expected"] == r["escalated"] else "MISS"
        moods = " ".join(f"{t['mood'][:3]}:{t['negative']:.2f}" for t in r["turns"] if t["mood"])
        fired = f"turn {r['turn']} {r['rule']}" if r["escalated"] else "-"
        lines.append(f"{verdict} {r['id']:<28} expected {r['expected']!s:<5} {fired:<24} {moods}")
    return "\n".join(lines)
