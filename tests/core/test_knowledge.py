"""The knowledge base on both databases, with the real embedder: import (Markdown, HTML, text, Q&A
JSONL/CSV; per-file errors, nothing half-imported; re-import by content hash), full-text search in
English and Chinese, hybrid retrieval, and answers: a curated entry word for word, the sources'
own words with their sources, an honest "not in our help center" for what it does not cover."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import migrate
from bot.config import Settings
from core.db import Database
from core.knowledge import Knowledge
from core.knowledge.retrieval import Embed
from core.knowledge.store import KnowledgeStore
from tests.auxil.postgres import postgres_database

DATA = Path(__file__).resolve().parents[1] / "data"
KB, BAD = DATA / "kb", DATA / "kb-bad"


@pytest.fixture(params=["sqlite", "postgresql"])
async def knowledge(
    request: pytest.FixtureRequest, tmp_path: Path, embed: Embed, base_settings: Settings
) -> AsyncIterator[Knowledge]:
    async with contextlib.AsyncExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'kb.db'}"
        if request.param == "postgresql":
            url = await stack.enter_async_context(postgres_database())
        await asyncio.to_thread(migrate.upgrade, url)
        db = Database.open(url)
        stack.push_async_callback(db.aclose)
        yield Knowledge(KnowledgeStore(db), embed, base_settings.knowledge)


async def test_import_reads_each_kind_and_reports_errors_per_file(knowledge: Knowledge, tmp_path: Path) -> None:
    report = await knowledge.add([KB / "articles", KB / "faq.jsonl", BAD])
    outcomes = {Path(r.path).name: (r.outcome, r.error) for r in report}
    assert {k: v[0] for k, v in outcomes.items() if v[0] != "error"} == {
        "memberships.html": "added", "returns.md": "added", "winter-zh.txt": "added", "faq.jsonl": "added"}  # fmt: skip
    assert "empty" in outcomes["empty.md"][1] and "binary" in outcomes["blob.txt"][1]
    assert "line 2" in outcomes["broken.jsonl"][1]
    documents = await knowledge.store.documents()
    assert len(documents) == 5  # 3 articles + 2 curated entries; nothing of broken.jsonl (its line 1 was fine)
    html = next(d for d in documents if d.source.endswith("memberships.html"))
    assert html.title == "Paddle Club memberships" and html.passages >= 1
    hits = await knowledge.search("cancel membership", k=1)
    assert hits[0].passage.heading == "Paddle Club memberships > Cancelling"  # the heading path is kept
    assert "Home | Help" not in hits[0].passage.text  # navigation left out

    again = await knowledge.add([KB / "faq.jsonl"])
    assert [r.outcome for r in again] == ["unchanged"]
    csv = tmp_path / "faq.csv"
    csv.write_text("id,question,answer\nfaq-hours,When do you open?,At 9 am every day.\n")
    assert [r.outcome for r in await knowledge.add([csv])] == ["added"]
    csv.write_text("id,question,answer\nfaq-hours,When do you open?,At 8 am every day.\n")
    assert [r.outcome for r in await knowledge.add([csv])] == ["updated"]
    answer = await knowledge.answer("when do you open?")
    assert answer.kind == "curated" and answer.text == "At 8 am every day."


async def test_full_text_finds_english_stems_and_chinese_words(knowledge: Knowledge) -> None:
    await knowledge.add([KB / "articles"])
    english = await knowledge.store.lexical("damages to the hull")
    chinese = await knowledge.store.lexical("冬季租船要穿什么")
    [damage] = await knowledge.store.passages(english[:1])
    [winter] = await knowledge.store.passages(chinese[:1])
    assert "cracked hull" in damage.text and "干式防寒服" in winter.text


async def test_answers_come_from_the_sources_or_say_plainly_there_is_none(knowledge: Knowledge) -> None:
    await knowledge.add([KB / "articles", KB / "faq.jsonl"])
    curated = await knowledge.answer("Can I bring my dog along on the kayak?")
    assert curated.kind == "curated"
    assert (
        curated.text
        == "Yes, dogs under 20 kg may ride in a tandem kayak with a dog life jacket, which we lend for free."
    )
    assert [s.id for s in curated.sources] == ["faq-dogs"] and curated.sources[0].url.startswith("https://")
    late = await knowledge.answer("what does it cost if I bring the kayak back late?")
    assert late.kind == "passages" and "$18" in late.text and next(s.id for s in late.sources) == "returns.md"
    unknown = await knowledge.answer("What is the WiFi password at the office?")
    assert unknown.kind == "none" and not unknown.sources and "person" in unknown.text


def test_coverage_reads_whole_passages_and_cjk_questions_fairly() -> None:
    """The word check sees every word of the passages (not only their first 40), and a Chinese
    question is not declined for the bigrams that span two words, which no text has."""
    from core.knowledge import coverage
    from core.knowledge.retrieval import Hit
    from core.knowledge.store import PassageRecord

    def hit(text: str) -> Hit:
        return Hit(PassageRecord(1, 1, "article", "T", "", "T", text), 1.0, 0.5)

    long = " ".join(f"filler{i}" for i in range(60)) + " Deposits are refunded within five days."
    assert coverage("when are deposits refunded?", [hit(long)]) == 1.0
    winter = hit("冬季租船时，请穿干式防寒服。救生衣免费提供。")
    assert coverage("冬季租船要穿什么衣服？", [winter]) >= 0.6
    assert coverage("冬季可以带狗吗？", [winter]) < 0.6
