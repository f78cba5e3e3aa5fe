"""A case in three lines for the people it is handed to: what the customer wants, what was tried,
how the mood went. Extractive (the customer's own words, counts, the stored moods): no model call,
so it is there on every notice at once, whatever the model is doing.

"Wants" is the customer's first message that says something: not a greeting, not the request for a
person ("转人工", "can I talk to a manager") nor a yes to the bot's offer of one — the issue is
what they wrote before asking. Measured on written key facts (README "The live hand-off")."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from core.memory import StoredMessage
from core.phrases import answer_of, human_request, normalize
from core.settings import EscalationSettings

WANTS_CHARS = 200


def brief(turns: Sequence[StoredMessage], words: EscalationSettings | None) -> list[str]:
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


def _says_something(text: str, words: EscalationSettings | None) -> bool:
    """Not a greeting or a thanks (short), not a request for a person, not a yes or no to an offer."""
    plain = normalize(text)
    long_enough = len(plain) + sum(not c.isascii() for c in plain) >= (words.loop_min_chars if words else 10)
    return long_enough and not (words and (human_request(text, words) or answer_of(text, words)))


HANDLE_AFTER = 16  # characters of an id shown as it is (platform user ids are shorter; session hashes longer)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def names(turns: Sequence[StoredMessage]) -> dict[str, str]:
    """A readable name for each customer of a transcript, by author id: their display name on the
    platform; without one, a short id as it is, a long one (a web visitor's session hash) as a stable
    handle, "Visitor 6b8e"; with the first email address they wrote, if any: "Visitor 6b8e (cora@…)"."""
    found: dict[str, str] = {}
    for turn in turns:
        if turn.role != "user" or turn.author_id in found:
            continue
        named = turn.author_name if turn.author_name and turn.author_name != turn.author_id else ""
        if not named:
            digest = hashlib.sha256(turn.author_id.encode()).hexdigest()[:4]
            named = f"Visitor {digest}" if len(turn.author_id) > HANDLE_AFTER else turn.author_id
        email = next((m.group(0) for t in turns if t.author_id == turn.author_id and (m := EMAIL.search(t.text))), "")
        found[turn.author_id] = f"{named} ({email})" if email else named
    return found
