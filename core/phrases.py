"""What a customer's words say to the escalation policy, read without the model: a request for a
person (direct or bare), a yes or a no to the bot's offer of one, the same question asked again.
Matched case- and width-insensitively, Latin scripts as whole words; the phrases are settings."""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Sequence

from core.settings import EscalationSettings

FILLERS = ("a", "an", "the", "your", "some", "one", "of", "real", "live", "actual", "proper", "human")
POLITE = ("please", "pls", "plz", "now", "asap", "i", "want", "need", "a", "an", "the", "real", "live", "一下",
          "请", "我", "要", "吧", "啊", "呀", "谢谢")  # fmt: skip


def normalize(text: str) -> str:
    """Case- and width-folded, punctuation as spaces, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _alternatives(phrases: Sequence[str], latin: bool) -> str:
    """A regex alternation of the Latin-script (or the CJK) phrases, longest first; never matches if none."""
    chosen = {normalize(p) for p in phrases if p.strip() and p.isascii() == latin}
    return "|".join(re.escape(p) for p in sorted(chosen, key=len, reverse=True)) or r"(?!x)x"


def asks_for_human(text: str, settings: EscalationSettings) -> bool:
    """A request for a person, as intent, not a word (see `human_request`)."""
    return bool(human_request(text, settings))


def human_request(text: str, settings: EscalationSettings) -> str:
    """ "direct": a way of asking (`request_phrases`: "speak to", "transfer me to", "找", "转") followed
    by someone to ask for (`human_phrases`: "supervisor", "real person", "人工", "客服"); "vague": a
    message that is nothing but such a someone ("agent", "operator please", "人工"); else "". So
    "agent" as an ordinary noun, "human skin" or "人工智能" (`not_human_phrases`) do not count."""
    excluded, latin, cjk, someone, polite, keys = _patterns(settings)
    low = text.casefold()
    if text.isascii() and not any(key in low for key in keys):
        return ""  # every match needs a someone, so its longest word: most messages end here (~1 us)
    said = excluded.sub(" ", normalize(text)) if excluded else normalize(text)
    if latin.search(said) or cjk.search(said.replace(" ", "")):
        return "direct"
    return "vague" if _only_someone(said, someone, polite) else ""


@functools.lru_cache(maxsize=16)
def _patterns(settings: EscalationSettings) -> tuple[re.Pattern[str] | None, re.Pattern[str], re.Pattern[str],
                                                    re.Pattern[str] | None, re.Pattern[str], set[str]]:  # fmt: skip
    """The settings' phrases compiled once (a report checks every customer turn of thousands)."""
    excluded = sorted(set(filter(None, map(normalize, settings.not_human_phrases))), key=len, reverse=True)
    asking, someone = settings.request_phrases, settings.human_phrases
    fillers = "|".join(FILLERS)
    latin = (
        rf"(?<!\w)(?:{_alternatives(asking, True)}) (?:(?:{fillers}) ){{0,3}}(?:{_alternatives(someone, True)})(?!\w)"
    )
    between = "你们的?|您们的?|一位|一个|个|一下|下"  # "找你们经理", "叫一个客服"
    cjk = rf"(?:{_alternatives(asking, False)})(?:{between}){{0,2}}(?:{_alternatives(someone, False)})"
    persons = sorted({normalize(p) for p in someone if p.strip()}, key=len, reverse=True)
    bounded = [rf"(?<!\w){re.escape(p)}(?!\w)" if p.isascii() else re.escape(p) for p in persons]
    without = re.compile("|".join(map(re.escape, excluded))) if excluded else None
    persons_re = re.compile("|".join(bounded)) if bounded else None
    keys = {max(p.split(), key=len) for p in persons if p.isascii()}  # ASCII text: one of these must be in it
    return without, re.compile(latin), re.compile(cjk), persons_re, re.compile("|".join(map(re.escape, POLITE))), keys


def _only_someone(said: str, persons: re.Pattern[str] | None, polite: re.Pattern[str]) -> bool:
    """The message is a someone and politeness: "operator please", "HUMAN!!", "请转人工" (minus the verb)."""
    if persons is None:
        return False
    marked = persons.sub(" \x00 ", said)
    if "\x00" not in marked:
        return False
    return all(t == "\x00" or t in POLITE or (not t.isascii() and not polite.sub("", t)) for t in marked.split())


def answer_of(text: str, settings: EscalationSettings) -> str:
    """ "yes" or "no" when the message opens with one of `yes_phrases` / `no_phrases` ("yes please",
    "sure, go ahead", "no thanks, just tell me...", "好的", "不用了"), else "" (a message about
    something else). A no wins over a yes it contains ("不要" holds "要")."""
    said = normalize(text)
    first = said.split(" ", 1)[0]  # a CJK answer's first clause
    for verdict, phrases in (("no", settings.no_phrases), ("yes", settings.yes_phrases)):
        for phrase in map(normalize, phrases):
            if not phrase:
                continue
            if phrase.isascii() and (said == phrase or said.startswith(phrase + " ")):
                return verdict
            if not phrase.isascii() and first.startswith(phrase) and len(first) <= len(phrase) + 3:
                return verdict  # a short CJK clause: "好的", "好的谢谢", "不用了吧"; not "好烦啊我的订单呢"
    return ""


def loops(text: str, earlier: Sequence[str], settings: EscalationSettings) -> bool:
    """The customer asks the same thing for the `loop_repeats`-th time: this message and enough of their
    earlier ones (newest last) are alike (`similarity` ≥ `loop_similarity`). Short messages ("ok",
    "yes", "thanks", "好的谢谢") never loop (a CJK character counts as two)."""
    said = normalize(text)
    if len(said) + sum(not c.isascii() for c in said) < settings.loop_min_chars:
        return False
    alike = sum(similarity(said, normalize(other)) >= settings.loop_similarity for other in earlier)
    return alike + 1 >= settings.loop_repeats


def similarity(a: str, b: str) -> float:
    """How alike two normalized messages are, 0-1: difflib's ratio, or how much of the shorter one's
    character trigrams (CJK: bigrams) the other holds — "how do I change my plan" is in "I mean, how
    do I change my subscription plan". Lexical: "open on Saturday" is like "open on Sunday"."""
    if not a or not b:
        return 0.0
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    mine, theirs = _grams(a), _grams(b)
    held = len(mine & theirs) / min(len(mine), len(theirs)) if mine and theirs else 0.0
    return max(ratio, held)


def _grams(text: str) -> set[str]:
    n = 3 if text.isascii() else 2
    text = text if text.isascii() else text.replace(" ", "")
    return {text[i : i + n] for i in range(len(text) - n + 1)}
