"""`tonebot eval-escalation`: scripted support conversations, each turn through the real pipeline
(the Bot with the configured model, storage in a scratch SQLite file, the escalation policy),
scored against what a support team would want by the last turn.

Input: JSON Lines `{"id", "turns": [customer messages], "expected": "continue" | "offer" | "escalate",
"reason": ...}` — the three-way decision (an escalation anywhere in the conversation is `escalate`,
else an offer of a person is `offer`) and its reason (`negative` stands for either mood rule) — or
the older `{"id", "turns", "escalate": true|false}`, where a person offered counts as reached.
Replies are kept short (they are not what is measured). Output: three-way and reason accuracy,
escalation precision and recall, and for every conversation the moods per turn, the turn that
decided and the rule.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from bot import migrate
from bot.config import Settings
from core.bot import Bot
from core.engine import Engine
from core.errors import ConfigError
from core.events import ChatMessage, ConversationKey, IncomingMessage
from core.memory import Memory

REPLY_TOKENS = 4
DECISIONS = ("continue", "offer", "escalate")
MOOD_RULES = ("high_negative", "repeated_negative")  # an expected reason "negative" is either


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ConfigError(f"no such file: {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        three_way = row.get("expected") in DECISIONS
        if not isinstance(row.get("turns"), list) or not (three_way or isinstance(row.get("escalate"), bool)):
            raise ConfigError(
                f"{path}: each line needs 'turns' (a list) and 'expected' (continue, offer or escalate)"
                " or 'escalate' (true or false)"
            )
    return rows


async def run(settings: Settings, path: Path) -> dict[str, Any]:
    from bot.app import open_engine

    conversations = read(path)
    engine = await open_engine(settings.model, settings.sentiment, settings.secrets.inference_api_key)
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
        bot = Bot(_Brief(engine), memory, settings.prompts, settings.memory, settings.escalation)
        try:
            return score([await _converse(bot, conversation) for conversation in conversations])
        finally:
            await memory.aclose()


class _Brief:
    """The engine, with every reply cut after its first REPLY_TOKENS chunks (replies are not measured)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.classify, self.health, self.aclose = engine.classify, engine.health, engine.aclose

    async def reply(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        chunks = aiter(self.engine.reply(messages))
        try:
            for _ in range(REPLY_TOKENS):
                yield await anext(chunks)
        except StopAsyncIteration:
            return
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()


async def _converse(bot: Bot, conversation: dict[str, Any]) -> dict[str, Any]:
    key = ConversationKey("eval", str(conversation.get("id", "")))
    turns, escalated_at, offered = [], None, None
    for number, text in enumerate(conversation["turns"], 1):
        reply = await bot.handle(IncomingMessage(key, user_id="customer", text=text))
        mood = reply.mood
        negative = round(mood.scores["negative"], 3) if mood else None
        turns.append({"text": text, "mood": mood.label if mood else None, "negative": negative,
                      "offered": reply.offered})  # fmt: skip
        if reply.escalated and escalated_at is None:
            escalated_at = number
        if reply.offered and offered is None:
            offered = (number, reply.offered)
    cases = [c for c in await bot.handoff.cases(open_only=False) if c.escalation.key == key]
    decision = "escalate" if escalated_at else "offer" if offered else "continue"
    rule = cases[0].escalation.reason if cases else offered[1] if offered else None
    three_way = conversation.get("expected") in DECISIONS
    return {
        "id": key.chat_id,
        "lang": conversation.get("lang", ""),
        "expected": conversation["expected"] if three_way else conversation["escalate"],
        "expected_reason": conversation.get("reason") if three_way else None,
        "decision": decision,
        # a person reached: escalated (three-way files), escalated or offered (true/false files)
        "escalated": decision == "escalate" if three_way else decision != "continue",
        "turn": escalated_at or (offered[0] if offered else None),
        "rule": rule,
        "turns": turns,
    }


def _right(r: dict[str, Any]) -> bool:
    if isinstance(r["expected"], bool):
        return r["expected"] == r["escalated"]
    return r["expected"] == r["decision"] and _reason_right(r)


def _reason_right(r: dict[str, Any]) -> bool:
    wanted = r.get("expected_reason")
    return not wanted or r["rule"] == wanted or (wanted == "negative" and r["rule"] in MOOD_RULES)


def score(results: list[dict[str, Any]]) -> dict[str, Any]:
    wanted = [r["expected"] == "escalate" if isinstance(r["expected"], str) else r["expected"] for r in results]
    tp = sum(w and r["escalated"] for w, r in zip(wanted, results, strict=True))
    fp = sum(r["escalated"] and not w for w, r in zip(wanted, results, strict=True))
    fn = sum(w and not r["escalated"] for w, r in zip(wanted, results, strict=True))
    three_way = [r for r in results if isinstance(r["expected"], str)]
    with_reason = [r for r in three_way if r["expected"] != "continue"]
    return {
        "conversations": len(results),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "three_way": len(three_way),
        "decision_accuracy": _share(r["expected"] == r["decision"] for r in three_way),
        "reason_accuracy": _share(r["expected"] == r["decision"] and _reason_right(r) for r in with_reason),
        "misses": [r for r in results if not _right(r)],
        "results": results,
    }


def _share(hits: Iterable[bool]) -> float | None:
    counted = list(hits)
    return sum(counted) / len(counted) if counted else None


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['conversations']} conversations: precision {report['precision']:.2f}, recall {report['recall']:.2f}"
        f" ({report['true_positives']} caught, {report['false_positives']} false alarms,"
        f" {report['false_negatives']} missed)"
    ]
    if report["three_way"]:
        lines.append(f"{report['three_way']} three-way: decision accuracy {report['decision_accuracy']:.3f},"
                     f" reason accuracy {report['reason_accuracy'] or 0:.3f} (continue/offer/escalate)")  # fmt: skip
    for r in report["results"]:
        verdict = "ok  " if _right(r) else "MISS"
        moods = " ".join(f"{t['mood'][:3]}:{t['negative']:.2f}" for t in r["turns"] if t["mood"])
        fired = f"turn {r['turn']} {r['decision']} {r['rule']}" if r["turn"] else r["decision"]
        wanted = f"{r['expected']} {r.get('expected_reason') or ''}".strip()
        lines.append(f"{verdict} {r['id']:<28} expected {wanted:<26} {fired:<34} {moods}")
    return "\n".join(lines)
