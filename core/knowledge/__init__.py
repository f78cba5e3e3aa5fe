"""Answers from the team's own knowledge: what the bot says comes from the sources, word for word.

A small model restates facts badly (data/kb README: the textbook RAG prompt on the 0.5B Qwen was
worse than returning the passage as is), so the facts of an answer are never the chat model's:
- a curated Q&A entry whose question matches closely is answered with its answer, word for word;
- otherwise, when the best passage is close enough, the answer is the best passage whole (when it is
  short) and the other passages' sentences closest to the question, in the sources' order, with the
  sources (measured on the development set: the whole best passage finds 0.55 of the key facts,
  its sentences alone 0.45);
- otherwise the knowledge base does not answer it: the bot says so plainly and offers a person.
The mood still picks the tone: an upset customer's answer opens with a soothing sentence.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.events import Source
from core.knowledge.retrieval import Embed, Hit, Retriever
from core.knowledge.store import DocumentRecord, KnowledgeStore
from core.knowledge.text import CJK, Document, SourceError, files, qa, read, sentences, terms
from core.settings import KnowledgeSettings

CJK_FOUND = 0.4  # the share of a CJK question's bigrams an answering passage has (measured: 0.2-0.4)
EMBED_BATCH = 256  # passages embedded at once on import
LEXICAL_WEIGHT = 0.3  # a sentence with the question's own words counts more than its meaning alone shows

__all__ = ["Answer", "Imported", "Knowledge", "SourceError", "is_question", "public_id"]


@dataclass(frozen=True)
class Answer:
    """`kind`: curated (word for word), passages (the sources' sentences), none (not in the knowledge base)."""

    text: str
    kind: str
    sources: tuple[Source, ...] = ()
    hits: tuple[Hit, ...] = field(default=(), compare=False)

    @property
    def grounded(self) -> bool:
        return self.kind != "none"


@dataclass(frozen=True)
class Imported:
    path: str
    outcome: str  # added | updated | unchanged | error
    documents: int = 0
    error: str = ""


def public_id(source: str, kind: str) -> str:
    """How a document is cited: by the id it was given (a curated entry, an article from the API),
    else by its file name."""
    return source.rsplit("#", 1)[-1] if "#" in source else Path(source).name


class Knowledge:
    """The knowledge base as the Bot and the commands use it."""

    def __init__(self, store: KnowledgeStore, embed: Embed, settings: KnowledgeSettings) -> None:
        self.store, self.embed, self.settings = store, embed, settings
        self.retriever = Retriever(store, embed)

    async def add(self, paths: Sequence[Path]) -> list[Imported]:
        """Import files and directories; each file is all or nothing, errors are per file. Files are
        embedded together, EMBED_BATCH passages at a time (batches of similar lengths)."""
        report: list[Imported] = []
        pending: list[tuple[Path, list[Document]]] = []
        for path in files(list(paths)):
            try:
                pending.append((path, read(path.resolve())))
            except SourceError as exc:
                report.append(Imported(str(path), "error", error=str(exc)))
            if sum(len(d.passages) for _, ds in pending for d in ds) >= EMBED_BATCH:
                report += await self._store(pending)
                pending = []
        report += await self._store(pending)
        position = {str(path): n for n, path in enumerate(files(list(paths)))}
        return sorted(report, key=lambda r: position.get(r.path, 0))  # in the files' order

    async def _store(self, pending: list[tuple[Path, list[Document]]]) -> list[Imported]:
        if not pending:
            return []
        texts = [_embedded(d, p) for _, documents in pending for d in documents for p in d.passages]
        vectors = await asyncio.to_thread(self.embed, texts)
        report, at = [], 0
        for path, documents in pending:
            outcomes = []
            for document in documents:
                n = len(document.passages)
                outcomes.append(await self.store.put(document, vectors[at : at + n]))
                at += n
            outcome = "added" if "added" in outcomes else "updated" if "updated" in outcomes else "unchanged"
            report.append(Imported(str(path), outcome, len(documents)))
        return report

    async def put(self, document: Document, status: str = "approved") -> str:
        """Add or replace one document (an entry or article from the operator API, a proposal)."""
        vectors = await asyncio.to_thread(self.embed, [_embedded(document, p) for p in document.passages])
        return await self.store.put(document, vectors, status)

    async def propose(self, question: str, answer: str, source: str) -> None:
        """A Q&A entry for a person to approve (from a hand-off the bot could not answer)."""
        await self.put(qa(question, answer, source), status="proposed")

    async def ready(self) -> bool:
        """Whether there is approved knowledge to answer from."""
        ids, _ = await self.retriever.vectors()
        return self.settings.enabled and bool(ids)

    async def search(self, question: str, k: int | None = None) -> list[Hit]:
        return (await self.retriever.search(question, k or self.settings.top_k))[1]

    async def answer(self, question: str) -> Answer:
        s = self.settings
        query, hits = await self.retriever.search(question, s.top_k)
        documents = {d.id: d for d in await self.store.documents()} if hits else {}
        if curated := await self._curated(query, hits, documents):
            return curated
        closest = max((h.dense for h in hits), default=0.0)
        if closest < s.answer_min or (closest < s.answer_sure and coverage(question, hits) < s.coverage_min):
            return Answer(s.no_answer_line, "none", hits=tuple(hits))
        picked = await self._sentences(query, question, hits)
        if not picked:
            return Answer(s.no_answer_line, "none", hits=tuple(hits))
        used = list(dict.fromkeys(hit.passage.document_id for hit, _ in picked))
        sources = tuple(_source(documents[d]) for d in used if d in documents)
        return Answer(" ".join(text for _, text in picked), "passages", sources, tuple(hits))

    async def _curated(self, query: np.ndarray, hits: list[Hit], documents: dict[int, DocumentRecord]) -> Answer | None:
        entries = [h for h in hits if h.passage.kind == "qa" and h.passage.question]
        if not entries:
            return None
        vectors = await asyncio.to_thread(self.embed, [h.passage.question for h in entries])
        best = int(np.argmax(vectors @ query))
        if float(vectors[best] @ query) < self.settings.curated_min:
            return None
        hit = entries[best]
        document = documents.get(hit.passage.document_id)
        sources = (_source(document),) if document else ()
        return Answer(hit.passage.text, "curated", sources, tuple(hits))

    async def _sentences(self, query: np.ndarray, question: str, hits: list[Hit]) -> list[tuple[Hit, str]]:
        """The passages' sentences closest to the question (meaning, and the question's own words),
        in the order the sources give them."""
        candidates = [(rank, n, hit, text) for rank, hit in enumerate(hits)
                      for n, text in enumerate(sentences(hit.passage.text))]  # fmt: skip
        if not candidates:
            return []
        vectors = await asyncio.to_thread(self.embed, [c[3] for c in candidates])
        words = set(terms(question))
        overlap = np.array([len(words & set(terms(c[3], None))) / max(1, len(words)) for c in candidates])
        scores = vectors @ query + LEXICAL_WEIGHT * overlap
        order = np.argsort(-scores)[: self.settings.max_sentences]
        chosen = [candidates[i] for i in order if scores[i] >= self.settings.sentence_min] or [candidates[order[0]]]
        if len(hits[0].passage.text) <= self.settings.whole_passage_chars:  # the best passage whole, and
            chosen = [c for c in candidates if c[0] == 0] + [c for c in chosen if c[0] != 0][:2]  # the rest's best
        return [(hit, text) for _, _, hit, text in sorted(chosen, key=lambda c: (c[0], c[1]))]


def coverage(question: str, hits: Sequence[Hit]) -> float:
    """The share of the question's words that the passages use (a word by its first five letters, so
    "paddles" finds "paddle"; CJK by bigrams): a question about what the sources never mention
    ("a motor warranty", "a WiFi password") is not answered by the passage closest to it."""
    words = [w for w in terms(question) if len(w) > 3 or CJK.match(w)]
    if not words:
        return 1.0
    found = set(terms(" ".join(f"{h.passage.heading} {h.passage.text}" for h in hits), None))
    stems = {w[:5] for w in found}
    bigrams = sum(bool(CJK.match(w)) for w in words)  # about half a CJK text's bigrams span two words:
    expected = len(words) - bigrams + CJK_FOUND * bigrams  # found nowhere, whatever the topic
    return min(1.0, sum(w in found or w[:5] in stems for w in words) / expected)


def _embedded(document: Document, passage: object) -> str:
    heading, text = getattr(passage, "heading", ""), getattr(passage, "text", "")
    return f"{heading}\n{text}" if document.kind == "article" else f"{document.question}\n{text}"


def _source(document: DocumentRecord) -> Source:
    return Source(public_id(document.source, document.kind), document.title, document.url)


QUESTION = re.compile(
    r"\?|？|吗|呢|怎么|什么|如何|多少|哪|是否|能不能|可以|为什么|^\s*(how|what|when|where|which|who|whom|whose|why|can|could|"
    r"do|does|did|is|are|am|was|were|will|would|should|shall|may|might|have|has|any|tell me|explain|i need|i want)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """Whether a message asks for something (a question mark, a question word, a request): what the
    knowledge base must answer or decline honestly; anything else may be small talk for the model."""
    return bool(QUESTION.search(text))
