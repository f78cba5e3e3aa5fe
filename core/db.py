"""The database every store shares: one SQLAlchemy async engine, its sessions, and the metadata.

SQLite (WAL mode) by default, PostgreSQL by changing the URL. The tables are declared by the
stores that own them (core/memory.py, core/ledger.py, core/escalations.py, core/outbox.py) on `Base`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def async_url(url: str) -> str:
    """Accept any SQLAlchemy URL; plain sqlite / postgresql URLs get their asyncio driver."""
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    parsed = make_url(url)
    return parsed.set(drivername=drivers.get(parsed.drivername, parsed.drivername)).render_as_string(
        hide_password=False
    )


def ensure_sqlite_dir(url: str) -> None:
    """A SQLite file may live in a directory that does not exist yet (data/ on a fresh clone)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_connect(dbapi_connection: Any, _: Any) -> None:
    # The driver's own transaction handling (BEGIN only before DML) breaks savepoints: releasing a
    # SAVEPOINT that opened the transaction commits it. Turn it off; `_sqlite_begin` begins instead
    # (SQLAlchemy's documented recipe for pysqlite / aiosqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten, not left in free pages (forget)
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred transaction
    # that read and then writes after another connection's commit fails at once (SQLITE_BUSY_SNAPSHOT).
    # Readers queue behind a writer too, which costs little: every transaction here lasts milliseconds.
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and a session factory (`expire_on_commit=False`: rows stay readable after commit)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)
        # reads with no transaction of their own: on SQLite no BEGIN IMMEDIATE, so no write lock taken
        self.reader = async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Database:
        url = async_url(url)
        ensure_sqlite_dir(url)
        engine = create_async_engine(url)
        if make_url(url).get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_connect)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def ping(self) -> None:
        """Raises when the database does not answer."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def aclose(self) -> None:
        await self.engine.dispose()
