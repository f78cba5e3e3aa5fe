"""Settings: the defaults in the dataclasses (here and in core/settings.py), then the shipped
config.toml (the texts), then a user's file, then environment variables; read once, validated.

Any key can be overridden from the environment as TONEBOT_<SECTION>__<KEY> (TONEBOT_WEB__PORT=9000),
read by the type of the setting it sets (a string stays a string, numbers and booleans are parsed,
a list is a TOML array or comma-separated). Modes are `Literal`s: a value outside them is a clear
error at start. Secrets never live in files: only the environment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from bot.credentials import Secrets, credentials
from bot.destinations import NotifySettings
from bot.platform import Platform
from bot.redact import public_url
from bot.registry import PLATFORMS
from core.errors import ConfigError
from core.settings import (
    EscalationSettings,
    HandoffSettings,
    KnowledgeSettings,
    MemorySettings,
    ModelSettings,
    OutcomeSettings,
    PromptSettings,
    RecoverySettings,
    SentimentSettings,
)

log = logging.getLogger(__name__)
DEFAULTS = Path(__file__).resolve().parent.parent / "config.toml"
ENV_PREFIX = "TONEBOT_"


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    rate_limit: str = "30/minute"  # per API token and per client IP, `limits` notation; "" turns it off
    max_body_bytes: int = 65536
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-For is believed
    shutdown_grace_seconds: int = 30  # in-flight replies get this long to finish on SIGTERM
    public_chat: bool = False  # the chat page open to anyone (cookie sessions; README "Deploy")
    secure_cookies: bool = True  # public chat: the session cookie only over HTTPS (false for plain HTTP)
    max_streams: int = 200  # live event streams open at once in this process; beyond: 429
    streams_per_client: int = 4  # per address (and per web-chat session)
    stream_minutes: float = 15.0  # a stream ends after this; the page reconnects and resumes (Last-Event-ID)


@dataclass(frozen=True)
class Settings:
    sentiment: SentimentSettings
    prompts: PromptSettings
    escalation: EscalationSettings
    knowledge: KnowledgeSettings
    model: ModelSettings = field(default_factory=ModelSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    web: WebSettings = field(default_factory=WebSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    handoff: HandoffSettings = field(default_factory=HandoffSettings)
    outcome: OutcomeSettings = field(default_factory=OutcomeSettings)
    secrets: Secrets = field(default_factory=Secrets)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line
    log_message_text: bool = False  # put users' message text into the logs
    platforms: Mapping[str, Any] = field(default_factory=dict)  # each registered platform's section, by name

    def desks(self) -> dict[str, str]:
        """Where agents work on the platforms: platform -> its support chat (the enabled ones)."""
        found = {name: PLATFORMS[name].desk_target(section) for name, section in self.platforms.items()}
        return {name: target for name, target in found.items() if target and self.platforms[name].enabled}

    def enabled_platforms(self) -> list[str]:
        return [name for name, section in self.platforms.items() if section.enabled]

    def credentials(self) -> list[str]:  # every configured credential, longest first (bot/credentials.py)
        return credentials(self.secrets, self.memory.url, self.notify.webhook_urls)


class _FromEnv(str):
    """A raw environment value, read by the type of the setting it lands on."""


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings once; pass the result down, never re-read."""
    data: dict[str, Any] = _read(DEFAULTS) if DEFAULTS.exists() else {}
    if path is not None:
        _merge(data, _read(path))
    for name, value in (environ or {}).items():
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG":
            nested: Any = _FromEnv(value)
            for key in reversed(name[len(ENV_PREFIX) :].lower().split("__")):  # A__B: {"a": {"b": value}}
                nested = {key: nested}
            _merge(data, nested)
    if "secrets" in data:
        raise ConfigError("secrets are read from the environment only, never from a config file")
    platforms = {name: _build(p.settings, _platform_section(data, p), name) for name, p in PLATFORMS.items()}
    settings: Settings = _build(Settings, data, "")
    _check_database_url(settings.memory.url)
    for name, section in platforms.items():
        if (target := PLATFORMS[name].desk_target(section)) and not section.enabled:
            raise ConfigError(f"{name}.{PLATFORMS[name].desk} is {target!r} but {name}.enabled is false: turn it on")
    names = [secret for p in PLATFORMS.values() for secret in p.secrets]
    return dataclasses.replace(settings, secrets=Secrets.from_env(environ or {}, names), platforms=platforms)


def _platform_section(data: dict[str, Any], platform: Platform) -> dict[str, Any]:
    """A platform's section, out of the settings read (with keys that moved there from elsewhere)."""
    section = data.pop(platform.name, {})
    for old, key in platform.moved.items():
        where, _, name = old.partition(".")
        if isinstance(data.get(where), dict) and name in data[where]:
            log.warning("setting %s has moved to %s.%s; please rename it", old, platform.name, key)
            if isinstance(section, dict):
                section.setdefault(key, data[where].pop(name))
    return section


def _check_database_url(url: str) -> None:
    """A database URL that cannot be one is a clear error at start (its text is not repeated: it may
    hold a password)."""
    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(
            "memory.url is not a database URL SQLAlchemy can use"
            " (e.g. sqlite:///data/tonebot.db or postgresql://user:password@host/tonebot)"
        ) from None


def as_toml(settings: Settings) -> str:
    """Every setting and its value, as a config file would hold them; secrets left out, and the
    credentials inside settings masked (the database password, webhook URLs past their host)."""
    plain = dataclasses.asdict(settings)
    plain.pop("secrets")
    plain.update(plain.pop("platforms"))
    plain["memory"]["url"] = make_url(settings.memory.url).render_as_string(hide_password=True)
    plain["notify"]["webhook_urls"] = [public_url(url) for url in settings.notify.webhook_urls]
    lines = [f"{key} = {_toml(value)}" for key, value in plain.items() if not isinstance(value, dict)]
    for section, values in plain.items():
        if isinstance(values, dict):
            lines += ["", f"[{section}]", *(f"{key} = {_toml(value)}" for key, value in values.items())]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):  # a table in a section ([handoff.hours]), inline
        return "{" + ", ".join(f"{key} = {_toml(v)}" for key, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    if unknown := set(data) - known:
        raise ConfigError(f"unknown setting(s) in [{where or 'top level'}]: {', '.join(sorted(unknown))}")
    required = {f.name for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING}
    if missing := required - set(data):
        raise ConfigError(f"missing setting(s) in [{where or 'top level'}]: {', '.join(sorted(missing))}")
    values = {name: _coerce(hints[name], data[name], f"{where}.{name}".strip(".")) for name in data}
    return cls(**values)


def _from_env(kind: Any, raw: str, where: str) -> Any:
    """An environment value as the type `kind` wants it."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                    "off": False}[raw.strip().lower()]  # fmt: skip
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if origin is tuple:
            if raw.strip().startswith("["):
                return tomllib.loads(f"v = {raw}")["v"]
            return [item.strip() for item in raw.split(",") if item.strip()]
    except (KeyError, ValueError, tomllib.TOMLDecodeError):
        wanted = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a list")
        raise ConfigError(f"{where} (from the environment) must be {wanted}, got {raw!r}") from None
    return str(raw)  # str, Path, Literal


def _coerce(kind: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(typing.cast(type, kind), value, where)
    if isinstance(value, _FromEnv):
        value = _from_env(kind, value, where)
    origin = typing.get_origin(kind)
    if origin is Literal:
        if value not in typing.get_args(kind):
            choices = " or ".join(repr(choice) for choice in typing.get_args(kind))
            raise ConfigError(f"{where} must be {choices}, got {value!r}")
        return value
    if kind is Path:
        return Path(str(value)).expanduser()
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = typing.get_args(kind)[0]
        return tuple(tuple(v) if isinstance(v, list) else str(v) if item is str else v for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = kind if origin not in (types.UnionType, typing.Union) else typing.get_args(kind)
    wrong = isinstance(expected, type) and not isinstance(value, expected)
    if wrong or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where} must be {getattr(expected, '__name__', expected)}, got {value!r}")
    return value
