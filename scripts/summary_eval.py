"""Does a notice's summary name the customer's issue? The extractive brief (what every notice carries)
against a summary written by a model, on escalations whose key facts were written first
(tests/data/escalation/summary_facts.jsonl: every fact, any of its words, must be in the summary).

    python scripts/summary_eval.py                       # the brief, and the embedded model
    python scripts/summary_eval.py --model FILE.gguf     # another model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import open_engine
from bot.config import load_settings
from core.events import ChatMessage
from core.memory import StoredMessage
from core.summary import brief

FACTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "escalation" / "summary_facts.jsonl"
PROMPT = (
    "You summarize support conversations for the human agent who takes over. In one short sentence, say"
    " what the customer's problem is, using their key details (order numbers, products, amounts)."
)
CAP = 240  # characters of a model summary (a notice's line, not an essay)


def names(text: str, facts: list[list[str]]) -> bool:
    low = text.casefold()
    return all(any(word.casefold() in low for word in fact) for fact in facts)


def extractive(row: dict[str, Any]) -> str:
    at, words = datetime.now(UTC), load_settings(environ={}).escalation
    turns = [StoredMessage(n, "user", "customer", text, None, at) for n, text in enumerate(row["turns"])]
    return brief(turns, words)[0]


async def written(model: str, rows: list[dict[str, Any]]) -> tuple[list[str], float]:
    settings = load_settings(environ={"TONEBOT_MODEL__ID": model})
    engine = await open_engine(settings.model, settings.sentiment, "")
    started, out = time.perf_counter(), []
    try:
        for row in rows:
            transcript = "\n".join(f"Customer: {text}" for text in row["turns"])
            asked = [ChatMessage("system", PROMPT), ChatMessage("user", f"Conversation:\n{transcript}\n\nSummary:")]
            text = ""
            async for chunk in engine.reply(asked):
                text += chunk
                if len(text) > CAP:
                    break
            out.append(text)
    finally:
        await engine.aclose()
    return out, (time.perf_counter() - started) / len(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    args = parser.parse_args()
    rows = [json.loads(line) for line in FACTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    ours = [names(extractive(row), row["facts"]) for row in rows]
    print(f"extractive brief: {sum(ours)}/{len(rows)} name the issue (no model call)")
    texts, seconds = await written(args.model, rows)
    theirs = [names(text, row["facts"]) for text, row in zip(texts, rows, strict=True)]
    print(f"{args.model}: {sum(theirs)}/{len(rows)} name the issue, {seconds:.2f} s a summary")
    for row, text, ok in zip(rows, texts, theirs, strict=True):
        if not ok:
            print(f"  miss {row['id']}: {' '.join(text.split())[:120]}")


if __name__ == "__main__":
    asyncio.run(main())
