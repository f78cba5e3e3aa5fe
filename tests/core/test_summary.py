"""The three-line brief on every notice (#30, item 5, its extractive part): what the customer wants
in their own words, what was tried, how the mood went."""

from datetime import UTC, datetime

from core.events import Mood
from core.memory import StoredMessage
from core.summary import brief

AT = datetime(2026, 12, 1, tzinfo=UTC)
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
    assert brief(turns) == [
        "Wants: Where is my order #4471? It was due on Monday.",
        "Tried: 2 answers from the bot; 0 from the knowledge base, 1 it had no answer for",
        "Mood: started neutral 0.80, now negative 0.93",
    ]
    assert brief([turn(1, "assistant", "hi")]) == []
    long = brief([turn(1, "user", "my blender broke " * 30, NEG)])
    assert long[0].endswith("…") and len(long[0]) < 220 and long[1] == "Tried: 0 answers from the bot"
