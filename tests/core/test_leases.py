"""Leases on PostgreSQL: one holder at a time, no connection pinned while held, a dead holder's
lease taken over once it expires, a live holder's renewed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot import migrate
from core import leases
from core.db import Database
from tests.auxil.postgres import postgres_database


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    async with postgres_database() as url:
        await asyncio.to_thread(migrate.upgrade, url)
        database = Database.open(url)
        yield database
        await database.aclose()


async def test_holding_a_lease_pins_no_connection(db: Database) -> None:
    async with leases.hold(db, "a"), leases.hold(db, "b"):
        assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_dead_holders_lease_is_taken_once_it_expires(db: Database) -> None:
    term = timedelta(seconds=1)
    assert await leases._take(db, "k", "dead-holder", term)  # taken and never released: the holder died
    assert not await leases._take(db, "k", "someone", term)
    await asyncio.sleep(1.1)
    assert await leases._take(db, "k", "someone", term)


async def test_a_live_holder_keeps_its_lease_past_the_term(db: Database) -> None:
    term, order = timedelta(seconds=0.6), []

    async def turn(name: str) -> None:
        async with leases.hold(db, "slow", term):
            order.append(f"{name} in")
            await asyncio.sleep(1.5)  # longer than the term: renewals keep it
            order.append(f"{name} out")

    await asyncio.gather(turn("a"), turn("b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
