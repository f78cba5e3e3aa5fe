"""The three-line brief on every notice (#30, item 5, its extractive part): what the customer wants
in their own words, what was tried, how the mood went."""

import json
from datetime import UTC, datetime
from pathlib import Path

from bot.config import load_settings
from core.events import Mood
from core.memory import StoredMessage
from core.summary import brief

AT = datetime(2026, 12, 1, tzinfo=UTC)
WORDS = load_settings(environ={}).escalation
FACTS = Path(__file__).resolve().parents[1] / "data" / "escalation" / "summary_facts.jsonl"
NEG = Mood.from_scores({"negative": 0.93, "neutral": 0.05, "positive": 0.02})
NEU = Mood.from_scores({"negative": 0.1, "neutral": 0.8, "positive": 0.1})


def turn(n: int, role: str, text: str, mood: Mood | None = None, knowledge: str | None = None) -> StoredMessage:
    return StoredMessage(n, role, "alice" if role == "user" else "tonebot", text, mood, AT, knowledge=knowledge)


def test_the_brief_names_the_question_what_was_tried_and_the_mood() -> None:
    turns = [
        turn(1, "user", "hello", NEU),
        turn(2, "assistant", "Hi! How can I help?"),
        turn(3, "user", "Where is my order #4471?   It was due on Monday.", NEU),
        turn(4, "assistant", "I could not find that in our help pages.", knowledge="none"),
        turn(5, "user", "This is ridiculous, I want my money back today.", NEG),
    ]
    assert brief(turns, WORDS) == [
        "Wants: Where is my order #4471? It was due on Monday.",
        "Tried: 2 answers from the bot; 0 from the knowledge base, 1 it had no answer for",
        "Mood: started neutral 0.80, now negative 0.93",
    ]
    assert brief([turn(1, "assistant", "hi")], WORDS) == []
    long = brief([turn(1, "user", "my blender broke " * 30, NEG)], WORDS)
    assert long[0].endswith("…") and len(long[0]) < 220 and long[1] == "Tried: 0 answers from the bot"


def test_the_brief_names_the_customers_issue_in_nine_of_ten_escalations() -> None:
    """#30's target, on escalations whose key facts were written before measuring: the "Wants" line
    holds every fact (any of its words) in >= 90% (37 of 38 measured; the miss: "账单不对。", four
    characters, is read as too short to say something, and the request after it is skipped)."""
    rows = [json.loads(line) for line in FACTS.read_text(encoding="utf-8").splitlines()]
    named = []
    for row in rows:
        turns = [t for n, text in enumerate(row["turns"])
                 for t in (turn(2 * n, "user", text, NEU), turn(2 * n + 1, "assistant", "Let me help."))]  # fmt: skip
        wants = brief(turns, WORDS)[0].casefold()
        named.append(all(any(word.casefold() in wants for word in fact) for fact in row["facts"]))
    missed = [row["id"] for row, ok in zip(rows, named, strict=True) if not ok]
    assert len(rows) >= 30 and sum(named) / len(rows) >= 0.9, missed


def test_the_request_and_the_yes_are_not_what_the_customer_wants() -> None:
    turns = [turn(1, "user", "hi"), turn(2, "user", "My invoice is wrong."), turn(3, "user", "agent"),
             turn(4, "user", "yes please"), turn(5, "user", "Can I talk to a manager?")]  # fmt: skip
    assert brief(turns, WORDS)[0] == "Wants: My invoice is wrong."
