"""Named leases: one holder at a time across replicas, without holding a database connection.

A turn of a conversation is held for the whole reply (seconds), so a lock that pins a pooled
connection (a PostgreSQL session advisory lock) starves the pool: 16 turns at once on the default
5 + 10 exhausted it and every turn needed a second connection to do its work. A lease is a row
(name, holder, expiry by the database's clock): taken with one upsert, renewed while held, released
with one delete; a holder that died loses it when it expires. Waiters poll with backoff, which is
rare: within one process the Bot's own lock already orders turns of a conversation.

On SQLite (one process per file) `hold` is a no-op: the in-process lock is the whole story there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, String, delete, func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database

log = logging.getLogger(__name__)
TERM = timedelta(seconds=30)  # a dead holder's lease is free after this; a live one renews every third of it
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""This process (this start of it: a restarted container has the same host name and often the same pid)."""
RECOVERY = f"{PROCESS}/recovery"
"""The owner of events this process's recovery claimed (core/ledger.py)."""


def idle(owner: Any, until: Any, dialect: str, now: datetime, mine: tuple[str, ...]) -> ColumnElement[bool]:
    """Rows whose owner (with a lease until `until`) no live process is: none, expired, or, on SQLite
    (one process per file), any owner not among this process's names (`mine`): it is gone."""
    gone = or_(owner.is_(None), until < now)
    return or_(gone, owner.not_in(mine)) if dialect == "sqlite" else gone


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # a digest of the lease's name
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@asynccontextmanager
async def hold(db: Database, name: str, term: timedelta = TERM) -> AsyncIterator[None]:
    """Wait for the lease `name`, hold it (renewed) for the body, release it."""
    if db.dialect != "postgresql":
        yield
        return
    key = hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
    holder, wait = f"{PROCESS}:{uuid.uuid4().hex[:8]}", 0.02
    while not await _take(db, key, holder, term):
        await asyncio.sleep(wait)
        wait = min(2 * wait, 0.5)
    renewing = asyncio.create_task(_renew(db, key, holder, term))
    try:
        yield
    finally:
        renewing.cancel()
        await asyncio.shield(_release(db, key, holder))


async def _take(db: Database, key: str, holder: str, term: timedelta) -> bool:
    new = insert(Lease).values(name=key, holder=holder, expires_at=func.now() + term)
    taken = new.on_conflict_do_update(
        index_elements=[Lease.name],
        set_={"holder": new.excluded.holder, "expires_at": new.excluded.expires_at},
        where=Lease.expires_at < func.now(),
    ).returning(Lease.holder)
    async with db.session() as session, session.begin():
        return (await session.execute(taken)).scalar_one_or_none() == holder


async def _renew(db: Database, key: str, holder: str, term: timedelta) -> None:
    while True:
        await asyncio.sleep(term.total_seconds() / 3)
        try:
            async with db.session() as session, session.begin():
                renewed = await session.execute(
                    update(Lease).where(Lease.name == key, Lease.holder == holder).values(expires_at=func.now() + term)
                )
            if renewed.rowcount == 0:  # type: ignore[attr-defined]
                log.warning("lease %s expired while held (the process stalled longer than %s)", key, term)
        except Exception as exc:  # the next renewal tries again; the lease lasts `term` meanwhile
            log.warning("lease %s: renewal failed: %s", key, exc)


async def _release(db: Database, key: str, holder: str) -> None:
    try:
        async with db.session() as session, session.begin():
            await session.execute(delete(Lease).where(Lease.name == key, Lease.holder == holder))
    except Exception as exc:  # it expires by itself
        log.warning("lease %s: release failed (it expires within %s): %s", key, TERM, exc)
