"""The secrets: only ever from the environment, never from a file (bot/config.py refuses them there)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Secrets:
    """Only ever from the environment."""

    escalation_webhook_secret: str = ""
    operator_token: str = ""
    inference_api_key: str = ""  # for model.engine = "openai"
    api_tokens: tuple[str, ...] = ()  # API_TOKENS: comma-separated bearer tokens for /v1/*
    web_session_secret: str = ""  # signs web-chat sessions; random per start when unset (replicas: set it)
    platforms: Mapping[str, str] = field(default_factory=dict)  # the platforms' own, by variable name

    @classmethod
    def from_env(cls, environ: Mapping[str, str], platform_names: Sequence[str] = ()) -> Secrets:
        """The core's secrets, and the platforms' (`platform_names`: what the registry declares)."""
        values: dict[str, Any] = {f.name: environ.get(f.name.upper(), "") for f in dataclasses.fields(cls)}
        values["api_tokens"] = tuple(t.strip() for t in values["api_tokens"].split(",") if t.strip())
        values["platforms"] = {name: environ[name] for name in platform_names if environ.get(name)}
        return cls(**values)

    def enabled(self) -> list[str]:
        """The names of the secrets that are set (never their values)."""
        own = [f.name.upper() for f in dataclasses.fields(self) if f.name != "platforms" and getattr(self, f.name)]
        return own + sorted(self.platforms)


def credentials(secrets: Secrets, database_url: str, webhook_urls: Sequence[str]) -> list[str]:
    """Every configured credential, longest first: the secrets, the database password, and the
    webhook URLs (a Slack or helpdesk webhook URL is a credential in itself)."""
    values = [*secrets.api_tokens, *webhook_urls]
    values += [v for f in dataclasses.fields(secrets) if isinstance(v := getattr(secrets, f.name), str)]
    values += secrets.platforms.values()
    if password := make_url(database_url).password:
        values.append(str(password))
    return sorted({v for v in values if v}, key=len, reverse=True)
