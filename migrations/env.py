"""Alembic environment: metadata from the storage modules, URL from the caller or tonebot's settings."""

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import core.escalations
import core.feedback
import core.knowledge.store
import core.leases
import core.ledger
import core.memory
import core.notes
import core.offers
import core.outbox
import core.reports  # each store module declares its tables on Base
from core.db import Base, async_url

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    if url := config.get_main_option("sqlalchemy.url"):
        return url
    from bot.config import load_settings

    return load_settings(environ=os.environ).memory.url


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """The full-text index's objects are the migration's, per database, not the models'."""
    return name not in core.knowledge.store.FULL_TEXT


def run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, include_object=include_object
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_async_engine(async_url(database_url()), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    run(connection)
else:
    asyncio.run(run_async())
