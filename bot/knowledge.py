"""The knowledge base from the command line and the composition root: `tonebot kb add | list |
remove | approve | search | gaps`, and the Knowledge the Bot answers from."""

from __future__ import annotations

import asyncio

from bot.config import Settings
from core.db import Database
from core.knowledge import Knowledge
from core.knowledge.store import KnowledgeStore


def open_knowledge(db: Database, settings: Settings) -> Knowledge:
    """The knowledge base on the conversation database, with the configured embedder (loaded lazily)."""
    from core.local.embedder import LazyEmbedder  # the embedder's torch loads only when it is used

    return Knowledge(KnowledgeStore(db), LazyEmbedder(settings.knowledge.embedder), settings.knowledge)


async def warm(knowledge: Knowledge) -> None:
    """Load the embedder at start when there is knowledge to answer from (not on the first question)."""
    if await knowledge.ready():
        await asyncio.to_thread(knowledge.embed, ["warm-up"])


async def command(settings: Settings, action: str, args: list[str]) -> str:
    """One `tonebot kb ...` command on the configured database; its report as text."""
    from pathlib import Path

    from bot import migrate
    from core.errors import ConfigError
    from core.memory import Memory

    await asyncio.to_thread(migrate.upgrade, settings.memory.url)
    db = Database.open(settings.memory.url)
    knowledge = open_knowledge(db, settings)
    try:
        if action == "add":
            report = await knowledge.add([Path(a) for a in args])
            lines = [f"{r.outcome:9} {r.path}" + (f": {r.error}" if r.error else f" ({r.documents} entries)" if
                     r.documents > 1 else "") for r in report]  # fmt: skip
            errors = sum(r.outcome == "error" for r in report)
            return "\n".join([*lines, f"{len(report) - errors} imported, {errors} with errors"])
        if action in ("list", "proposed"):
            documents = await knowledge.store.documents("proposed" if action == "proposed" else None)
            return "\n".join(f"{d.id:5} {d.kind:7} {d.status:8} {d.passages:3}  {d.title}  ({d.source})"
                             for d in documents) or "the knowledge base is empty: `tonebot kb add PATH`"  # fmt: skip
        if action in ("remove", "approve"):
            if not args or not args[0].isdigit():
                raise ConfigError(f"tonebot kb {action} ID (the number `tonebot kb list` shows)")
            done = await (knowledge.store.remove(int(args[0])) if action == "remove"
                          else knowledge.store.set_status(int(args[0]), "approved"))  # fmt: skip
            return f"{action}d {args[0]}" if done else f"no document {args[0]}"
        if action == "search":
            hits = await knowledge.search(" ".join(args), k=5)
            return "\n".join(f"{h.score:.4f}  cos {h.dense:.2f}  {h.passage.heading}\n        {h.passage.text[:160]!r}"
                             for h in hits) or "nothing found"  # fmt: skip
        if action == "gaps":
            gaps = await Memory(db).unanswered()
            return "\n".join(f"{n:4}  {text}" for text, n in gaps) or "no unanswered questions yet"
        raise ConfigError(f"unknown kb action {action!r}")
    finally:
        await db.aclose()
