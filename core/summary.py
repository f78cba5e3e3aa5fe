"""A case in three lines for the people it is handed to: what the customer wants, what was tried,
how the mood went. Extractive (the customer's own words, counts, the stored moods): no model call,
so it is there on every notice at once, whatever the model is doing.

"Wants" is the customer's first message that says something: not a greeting, not the request for a
person ("转人工", "can I talk to a manager") nor a yes to the bot's offer of one — the issue is
what they wrote before asking. Measured on written key facts (README "The live hand-off")."""

from __future__ import annotations

from collections.abc import Sequence

from core.memory import StoredMessage
from core.phrases import answer_of, human_request, normalize
from core.settings import EscalationSettings

WANTS_CHARS = 200


def brief(turns: Sequence[StoredMessage], words: EscalationSettings) -> list[str]:
    """Up to three lines: "Wants: …", "Tried: …", "Mood: …" (none for an empty transcript)."""
    customer = [t for t in turns if t.role == "user"]
    if not customer:
        return []
    said = [t for t in customer if _says_something(t.text, words)]
    asked = said[0] if said else max(customer, key=lambda t: len(t.text))
    wants = " ".join(asked.text.split())
    lines = [f"Wants: {wants[:WANTS_CHARS]}{'…' if len(wants) > WANTS_CHARS else ''}"]
    answers = [t for t in turns if t.role == "assistant"]
    known = sum(t.knowledge in ("curated", "passages") for t in answers)
    missing = sum(t.knowledge == "none" for t in answers)
    agents = sum(t.role == "agent" for t in turns)
    tried = [f"{len(answers)} answer{'s' * (len(answers) != 1)} from the bot"]
    if known or missing:
        tried.append(f"{known} from the knowledge base, {missing} it had no answer for")
    if agents:
        tried.append(f"{agents} message{'s' * (agents != 1)} from an agent")
    lines.append("Tried: " + "; ".join(tried))
    moods = [t.mood for t in customer if t.mood is not None]
    if moods:
        first, last = moods[0], moods[-1]
        worst = max(moods, key=lambda m: m.scores.get("negative", 0.0))
        trend = f"started {first.label} {first.score:.2f}, now {last.label} {last.score:.2f}"
        if len(moods) > 2 and worst is not first and worst is not last and worst.label == "negative":
            trend += f" (worst negative {worst.score:.2f})"
        lines.append(f"Mood: {trend}")
    return lines


def _says_something(text: str, words: EscalationSettings) -> bool:
    """Not a greeting or a thanks (short), not a request for a person, not a yes or no to an offer."""
    plain = normalize(text)
    long_enough = len(plain) + sum(not c.isascii() for c in plain) >= words.loop_min_chars
    return long_enough and not human_request(text, words) and not answer_of(text, words)
