"""The platform contract: what one chat platform (Telegram, Slack, a third one) gives tonebot, and
what it gets. A platform is one package, `bot/adapters/<name>/`, whose `__init__` defines its
`Platform` (light: no platform library imported), and one line in `bot/registry.py`.

- `settings`: its config section `[<name>]`, a frozen dataclass with `enabled: bool`; if agents can
  work there, the setting named by `desk` holds its support chat (the desk target).
- `secrets`: the environment variables that hold its credentials (never read from a file; masked
  in every log line and in `config show`).
- `adapter`: "module:Class" of its adapter, imported only when the platform is on; the class is
  built as `Class(bot, settings, secrets)` — an async context manager with its `OutputChannel`, its
  optional `Desk`, and its web routes. Constructing it checks its settings and secrets (that is what
  `config check` does), entering it connects, leaving it disconnects.

Rasa's `InputChannel.from_credentials` + `OutputChannel`, with the desk as the support side.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from bot.delivery import OutputChannel
    from bot.desk import Desk
    from core.bot import Bot


@dataclass(frozen=True)
class Services:
    """What a platform's adapter is given: the bot (intake, the escalations, the hand-off), its own
    settings section and its own secrets (by environment variable name)."""

    bot: Bot
    settings: Any
    secrets: Mapping[str, str]


class Adapter(Protocol):
    """A running platform: an async context manager that may add routes to the web server."""

    @property
    def channel(self) -> OutputChannel: ...

    @property
    def desk(self) -> Desk | None:
        """Where agents answer escalations on this platform (its support chat), if one is configured."""

    async def __aenter__(self) -> Adapter: ...
    async def __aexit__(self, *exc: object) -> None: ...
    def routes(self) -> list[BaseRoute]: ...


@dataclass(frozen=True)
class Platform:
    name: str
    settings: type
    adapter: str  # "module:Class", imported by `open` (the platform's library is not imported before)
    secrets: tuple[str, ...] = ()
    desk: str = ""  # the setting in its section that names its support chat ("" = no desk here)
    moved: Mapping[str, str] = field(default_factory=dict)  # an old "section.key" -> its key in this section

    def open(self, services: Services) -> Adapter:
        module, _, name = self.adapter.partition(":")
        adapter: Callable[[Bot, Any, Mapping[str, str]], Adapter] = getattr(importlib.import_module(module), name)
        return adapter(services.bot, services.settings, services.secrets)

    def desk_target(self, section: Any) -> str:
        """The support chat configured in this platform's section ("" = none)."""
        return str(getattr(section, self.desk, "") or "") if self.desk else ""
