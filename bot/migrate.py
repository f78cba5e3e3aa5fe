"""Alembic, driven from tonebot's settings: `tonebot db upgrade` and the upgrade at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from core.db import async_url, ensure_sqlite_dir

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(toml_file=str(ROOT / "pyproject.toml"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision`; blocking, so call it off the event loop."""
    ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)
