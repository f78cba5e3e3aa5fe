"""The knowledge base in the conversation database: documents (articles, curated Q&A), their passages
with one stored vector each, and a full-text index over the passages — SQLite FTS5 (BM25) or
PostgreSQL's tsvector (ts_rank), behind one `lexical` method. Repository methods return dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, Text, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database
from core.events import utcnow
from core.knowledge.text import Document, index_text, terms


class KbDocument(Base):
    __tablename__ = "kb_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # article | qa
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(1024), default="")
    question: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="approved", index=True)  # approved | proposed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KbPassage(Base):
    __tablename__ = "kb_passages"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("kb_documents.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    heading: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    indexed: Mapped[str] = mapped_column(Text)  # heading + text as the full-text index reads it (CJK bigrams)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32, unit length (the embedder's)


@dataclass(frozen=True)
class DocumentRecord:
    id: int
    source: str
    kind: str
    title: str
    url: str
    status: str
    passages: int
    question: str = ""
    answer: str = ""


@dataclass(frozen=True)
class PassageRecord:
    id: int
    document_id: int
    kind: str
    title: str
    url: str
    heading: str
    text: str
    question: str = ""


class KnowledgeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, document: Document, vectors: np.ndarray | None, status: str = "approved") -> str:
        """Add or replace a document (by its source) with its passages and their vectors, in one
        transaction: "added", "updated" or "unchanged" (the same content hash)."""
        async with self.db.session() as session, session.begin():
            row = await session.scalar(select(KbDocument).filter_by(source=document.source))
            if row is not None and row.digest == document.digest and row.status == status:
                return "unchanged"
            outcome = "updated" if row is not None else "added"
            if row is not None:
                await self._drop_passages(session, row.id)
            else:
                row = KbDocument(source=document.source)
                session.add(row)
            row.kind, row.title, row.url, row.digest, row.status = (
                document.kind, document.title, document.url, document.digest, status)  # fmt: skip
            row.question, row.answer, row.updated_at = document.question, document.answer, utcnow()
            await session.flush()
            for n, passage in enumerate(document.passages):
                vector = vectors[n].astype(np.float32).tobytes() if vectors is not None else None
                indexed = index_text(f"{passage.heading}\n{passage.text}")
                item = KbPassage(document_id=row.id, position=n, heading=passage.heading, text=passage.text,
                                 indexed=indexed, vector=vector)  # fmt: skip
                session.add(item)
                await session.flush()
                if self.db.dialect == "sqlite":
                    await session.execute(text("INSERT INTO kb_fts(rowid, indexed) VALUES (:id, :t)"),
                                          {"id": item.id, "t": indexed})  # fmt: skip
            return outcome

    async def _drop_passages(self, session: AsyncSession, document_id: int) -> None:
        if self.db.dialect == "sqlite":
            await session.execute(
                text("DELETE FROM kb_fts WHERE rowid IN (SELECT id FROM kb_passages WHERE document_id = :d)"),
                {"d": document_id},
            )
        await session.execute(delete(KbPassage).where(KbPassage.document_id == document_id))

    async def remove(self, document_id: int) -> bool:
        async with self.db.session() as session, session.begin():
            row = await session.get(KbDocument, document_id)
            if row is None:
                return False
            await self._drop_passages(session, row.id)
            await session.delete(row)
            return True

    async def set_status(self, document_id: int, status: str) -> bool:
        async with self.db.session() as session, session.begin():
            row = await session.get(KbDocument, document_id)
            if row is None:
                return False
            row.status, row.updated_at = status, utcnow()
            return True

    async def documents(self, status: str | None = None) -> list[DocumentRecord]:
        count = select(func.count(KbPassage.id)).where(KbPassage.document_id == KbDocument.id).scalar_subquery()
        query = select(KbDocument, count).order_by(KbDocument.kind, KbDocument.title)
        if status:
            query = query.where(KbDocument.status == status)
        async with self.db.reader() as session:
            rows = (await session.execute(query)).tuples().all()
        return [DocumentRecord(d.id, d.source, d.kind, d.title, d.url, d.status, n, d.question, d.answer)
                for d, n in rows]  # fmt: skip

    async def version(self) -> tuple[object, ...]:
        """Changes whenever the approved knowledge changes (retrieval's in-memory vectors follow it)."""
        query = select(func.count(KbDocument.id), func.max(KbDocument.updated_at), func.max(KbDocument.id))
        async with self.db.reader() as session:
            return tuple((await session.execute(query)).one())

    async def vectors(self) -> tuple[list[int], np.ndarray | None]:
        """Every approved passage's id and vector (rows of a matrix), for dense search in memory."""
        query = (
            select(KbPassage.id, KbPassage.vector)
            .join(KbDocument, KbDocument.id == KbPassage.document_id)
            .where(KbDocument.status == "approved", KbPassage.vector.is_not(None))
            .order_by(KbPassage.id)
        )
        async with self.db.reader() as session:
            rows = (await session.execute(query)).tuples().all()
        if not rows:
            return [], None
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1] or b"", dtype=np.float32) for r in rows])

    async def passages(self, ids: Sequence[int]) -> list[PassageRecord]:
        query = (
            select(KbPassage, KbDocument)
            .join(KbDocument, KbDocument.id == KbPassage.document_id)
            .where(KbPassage.id.in_(list(ids)))
        )
        async with self.db.reader() as session:
            rows = {p.id: (p, d) for p, d in (await session.execute(query)).tuples().all()}
        return [_passage(*rows[i]) for i in ids if i in rows]

    async def lexical(self, query: str, limit: int = 20) -> list[int]:
        """Approved passages by full-text rank, best first: BM25 on SQLite (FTS5, porter stemming),
        ts_rank on PostgreSQL; the query's words are OR-ed, CJK as bigrams on both sides."""
        words = terms(query)
        if not words:
            return []
        approved = "p.document_id IN (SELECT id FROM kb_documents WHERE status = 'approved')"
        if self.db.dialect == "sqlite":
            match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
            sql = (f"SELECT p.id FROM kb_fts JOIN kb_passages p ON p.id = kb_fts.rowid "
                   f"WHERE kb_fts MATCH :q AND {approved} ORDER BY bm25(kb_fts) LIMIT :n")  # fmt: skip
        else:
            match = " | ".join("'" + w.replace("'", "").replace("\\", "") + "'" for w in words)
            sql = (f"SELECT p.id FROM kb_passages p, to_tsquery('english', :q) q "
                   f"WHERE to_tsvector('english', p.indexed) @@ q AND {approved} "
                   f"ORDER BY ts_rank_cd(to_tsvector('english', p.indexed), q) DESC LIMIT :n")  # fmt: skip
        async with self.db.reader() as session:
            return list((await session.execute(text(sql), {"q": match, "n": limit})).scalars().all())


def _passage(p: KbPassage, d: KbDocument) -> PassageRecord:
    return PassageRecord(p.id, d.id, d.kind, d.title, d.url, p.heading, p.text, d.question)


FULL_TEXT = frozenset({"kb_fts", "kb_fts_data", "kb_fts_idx", "kb_fts_content", "kb_fts_docsize", "kb_fts_config",
                       "ix_kb_passages_fts"})  # fmt: skip
"""The full-text index's own objects, made by the migration for each database (an FTS5 virtual table
and its shadow tables on SQLite, an expression GIN index on PostgreSQL), not by the models."""
