"""Hybrid retrieval: the full-text index and the sentence embedder, fused by reciprocal rank
(RRF, k = 60): each finds what the other misses (exact terms and prices; paraphrases)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.knowledge.store import KnowledgeStore, PassageRecord

RRF_K = 60
CANDIDATES = 20  # from each retriever, before fusion

Embed = Callable[[Sequence[str]], np.ndarray]  # blocking: texts -> unit vectors


@dataclass(frozen=True)
class Hit:
    passage: PassageRecord
    score: float  # fused
    dense: float  # cosine to the question


class Retriever:
    def __init__(self, store: KnowledgeStore, embed: Embed) -> None:
        self.store, self.embed = store, embed
        self._version: tuple[object, ...] | None = None
        self._ids: list[int] = []
        self._matrix: np.ndarray | None = None
        self._lock = asyncio.Lock()

    async def vectors(self) -> tuple[list[int], np.ndarray | None]:
        """Every approved passage's vector, in memory, reloaded when the knowledge base changes."""
        async with self._lock:
            if (version := await self.store.version()) != self._version:
                self._ids, self._matrix = await self.store.vectors()
                self._version = version
            return self._ids, self._matrix

    async def search(self, question: str, k: int) -> tuple[np.ndarray, list[Hit]]:
        """(the question's vector, the best `k` passages, best first)."""
        ids, matrix = await self.vectors()
        [query] = await asyncio.to_thread(self.embed, [question])
        lexical = await self.store.lexical(question, CANDIDATES)
        cosine: dict[int, float] = {}
        dense: list[int] = []
        if matrix is not None:
            scores = matrix @ query
            best = np.argsort(-scores)[:CANDIDATES]
            dense = [ids[i] for i in best]
            cosine = {ids[i]: float(scores[i]) for i in range(len(ids))}
        fused: dict[int, float] = {}
        for ranking in (lexical, dense):
            for rank, pid in enumerate(ranking):
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank + 1)
        top = sorted(fused, key=lambda pid: -fused[pid])[:k]
        passages = await self.store.passages(top)
        return query, [Hit(p, fused[p.id], cosine.get(p.id, 0.0)) for p in passages]
