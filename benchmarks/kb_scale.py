"""Knowledge-base scale: import N generated articles (the development set's paragraphs shuffled into
new articles, ~10 passages each) into a scratch SQLite database with the embedded embedder, then time
retrieval (full-text + dense + fusion) over questions. Prints the numbers; nothing is asserted.

    .venv/bin/python benchmarks/kb_scale.py ../shared/data/kb 1000
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot import migrate
from bot.config import load_settings
from core.db import Database
from core.knowledge import Knowledge
from core.knowledge.store import KnowledgeStore
from core.local.embedder import Embedder


async def main(kb: Path, n: int) -> None:
    paragraphs = [
        p.strip()
        for f in sorted((kb / "articles").glob("*.md"))
        for p in re.split(r"\n\s*\n", f.read_text())
        if len(p.strip()) > 60 and not p.startswith("#")
    ]
    questions = [json.loads(line)["text"] for line in (kb / "questions.jsonl").read_text().splitlines()]
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "articles"
        root.mkdir()
        for i in range(n):
            sections = [f"## Section {j}\n\n" + "\n\n".join(rng.sample(paragraphs, 2)) for j in range(5)]
            (root / f"article-{i:05d}.md").write_text(f"# Article {i}\n\n" + "\n\n".join(sections))
        url = f"sqlite:///{Path(scratch) / 'kb.db'}"
        await asyncio.to_thread(migrate.upgrade, url)
        embedder = Embedder()
        embedder.embed(["warm-up"])
        knowledge = Knowledge(KnowledgeStore(Database.open(url)), embedder.embed, load_settings().knowledge)
        started = time.perf_counter()
        await knowledge.add([root])
        imported = time.perf_counter() - started
        passages = sum(d.passages for d in await knowledge.store.documents())
        await knowledge.search("warm-up")
        times = []
        for question in questions:
            t = time.perf_counter()
            await knowledge.search(question)
            times.append(time.perf_counter() - t)
    times.sort()
    print(f"{n} articles, {passages} passages: import {imported:.1f} s ({1000 * imported / passages:.1f} ms a passage)")
    print(
        f"retrieval over {len(times)} questions: p50 {1000 * statistics.median(times):.1f} ms,"
        f" p95 {1000 * times[int(0.95 * (len(times) - 1))]:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1000))
