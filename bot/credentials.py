"""The secrets: only ever from the environment, never from a file (bot/config.py refuses them there)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Secrets:
    """Only ever from the environment."""

    telegram_bot_token: str = ""
    telegram_webhook_secret: str = ""
    slack_bot_token: str = ""
    slack_app_token: str = ""
    slack_signing_secret: str = ""
    escalation_webhook_secret: str = ""
    operator_token: str = ""
    inference_api_key: str = ""  # for model.engine = "openai"
    api_tokens: tuple[str, ...] = ()  # API_TOKENS: comma-separated bearer tokens for /v1/*
    web_session_secret: str = ""  # signs web-chat sessions; random per start when unset (replicas: set it)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Secrets:
        values: dict[str, Any] = {f.name: environ.get(f.name.upper(), "") for f in dataclasses.fields(cls)}
        values["api_tokens"] = tuple(t.strip() for t in values["api_tokens"].split(",") if t.strip())
        return cls(**values)

    def enabled(self) -> list[str]:
        """The names of the secrets that are set (never their values)."""
        return [f.name.upper() for f in dataclasses.fields(self) if getattr(self, f.name)]


def credentials(secrets: Secrets, database_url: str, webhook_urls: Sequence[str]) -> list[str]:
    """Every configured credential, longest first: the secrets, the database password, and the
    webhook URLs (a Slack or helpdesk webhook URL is a credential in itself)."""
    values = [*secrets.api_tokens, *webhook_urls]
    values += [v for f in dataclasses.fields(secrets) if isinstance(v := getattr(secrets, f.name), str)]
    if password := make_url(database_url).password:
        values.append(str(password))
    return sorted({v for v in values if v}, key=len, reverse=True)
