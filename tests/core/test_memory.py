"""Storage: migrations match the models, SQLite runs in WAL mode, the ledger dedupes."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from core.events import ConversationKey, IncomingMessage
from core.memory import Accepted, Base, Memory, Seen


async def test_migrations_on_an_empty_database_match_the_models(memory: Memory) -> None:
    def differences(connection):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)

    async with memory.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
        tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"conversations", "messages", "processed_events", "alembic_version"} <= tables


async def test_sqlite_runs_in_wal_mode(memory: Memory) -> None:
    async with memory.engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


async def test_the_ledger_accepts_an_event_once_even_when_it_arrives_twice_at_once(memory: Memory) -> None:
    msg = IncomingMessage(ConversationKey("test", "c"), user_id="u", text="hi", event_id="e-1")
    results = await asyncio.gather(*(memory.accept(msg) for _ in range(4)))
    assert sum(isinstance(r, Accepted) for r in results) == 1
    assert sum(isinstance(r, Seen) for r in results) == 3
    assert len(await memory.messages(msg.key)) == 1


async def test_the_same_event_id_on_another_platform_is_a_different_event(memory: Memory) -> None:
    a = IncomingMessage(ConversationKey("telegram", "c"), user_id="u", text="hi", event_id="7")
    b = IncomingMessage(ConversationKey("slack", "c"), user_id="u", text="hi", event_id="7")
    assert isinstance(await memory.accept(a), Accepted)
    assert isinstance(await memory.accept(b), Accepted)
