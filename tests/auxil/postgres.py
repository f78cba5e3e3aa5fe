"""A fresh PostgreSQL database per test, on the server `scripts/setup.sh test` starts
(scripts/postgres.sh): its URL comes from $POSTGRES_TEST_URL or .venv/postgres-test-url."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

ENV = "POSTGRES_TEST_URL"
URL_FILE = Path(__file__).resolve().parents[2] / ".venv" / "postgres-test-url"


def admin_url() -> str:
    if url := os.environ.get(ENV):
        return url
    return URL_FILE.read_text().strip() if URL_FILE.exists() else ""


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards."""
    url = admin_url()
    if not url:
        pytest.skip(f"no PostgreSQL for the tests: run `scripts/setup.sh test` (or set {ENV})")
    name = f"tonebot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            await drop(admin, name)
        finally:
            await admin.close()


async def drop(admin: asyncpg.Connection, name: str) -> None:
    """Drop a test database; an autovacuum worker that just started on it may refuse to end for a role
    without pg_signal_backend (scripts/postgres.sh grants it): try again as it finishes."""
    for attempt in range(20):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except asyncpg.InsufficientPrivilegeError:
            if attempt == 19:
                raise
            await asyncio.sleep(0.25)


@pytest.fixture(params=["sqlite", "postgresql"], name="db_url")
async def on_both_databases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Import this into a test module to run each of its tests on SQLite and on PostgreSQL (it
    overrides the SQLite-only `db_url` of conftest)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tonebot.db'}"
        return
    async with postgres_database() as url:
        yield url
