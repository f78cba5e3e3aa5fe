"""What `serve` refuses to expose, checked before anything starts (and by `tonebot config check`)."""

from __future__ import annotations

import ipaddress
import logging

from bot.config import Settings
from core.errors import ConfigError

log = logging.getLogger(__name__)


MIN_OPERATOR_TOKEN = 24  # characters: the operator token unlocks every transcript


def check_exposure(settings: Settings) -> None:
    """Open on loopback is fine for a local chat; anything else must have API tokens, or be a public
    chat (cookie sessions on the chat routes, tokens for the rest); an operator token must be long."""
    web, secrets = settings.web, settings.secrets
    if web.enabled and not secrets.api_tokens and not web.public_chat and not _is_loopback(web.host):
        raise ConfigError(
            f"web.host is {web.host!r}, not a loopback address, and API_TOKENS is not set: refusing to serve "
            "the API open to the network (set API_TOKENS=token1,token2, or web.public_chat = true for an "
            "open chat page, or bind to 127.0.0.1)"
        )
    if secrets.operator_token and len(secrets.operator_token) < MIN_OPERATOR_TOKEN:
        raise ConfigError(
            f"OPERATOR_TOKEN is shorter than {MIN_OPERATOR_TOKEN} characters: it unlocks every transcript "
            "(make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if any(len(token) < MIN_OPERATOR_TOKEN for token in secrets.api_tokens):
        log.warning("an API token is shorter than %d characters: guessable; use long random tokens", MIN_OPERATOR_TOKEN)
    if settings.notify.webhook_urls and not secrets.escalation_webhook_secret:
        log.warning("notify.webhook_urls are set but ESCALATION_WEBHOOK_SECRET is not: notices go out unsigned")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
