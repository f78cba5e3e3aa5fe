"""Chatterbox: a third platform that exists only in the tests (the acid test of bot/platform.py).

A made-up chat service with rooms, threads and buttons, served by `server.FakeChatterbox` on
loopback. Nothing outside this package knows it: a test registers `PLATFORM` in the registry
(`bot.registry.PLATFORMS`) and turns it on with `[chatterbox]` settings, as a user would.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.platform import Platform


@dataclass(frozen=True)
class ChatterboxSettings:
    enabled: bool = False
    api_url: str = "https://api.chatterbox.example"
    events_path: str = "/chatterbox/events"
    support_room: str = ""  # where agents work
    allowed_user_ids: tuple[str, ...] = ()
    rate_limit_per_minute: int = 20


PLATFORM = Platform(
    "chatterbox",
    ChatterboxSettings,
    "tests.auxil.chatterbox.adapter:ChatterboxAdapter",
    secrets=("CHATTERBOX_TOKEN",),
    desk="support_room",
)
