"""A fresh PostgreSQL database per test on the server `.ci/run` starts (scripts/postgres.sh)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

ENV = "POSTGRES_TEST_URL"


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards."""
    admin_url = os.environ.get(ENV)
    if not admin_url:
        pytest.skip(f"{ENV} is not set (.ci/run sets it after starting PostgreSQL with scripts/postgres.sh)")
    name = f"tonebot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
