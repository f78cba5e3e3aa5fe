"""Where escalations go: the `[notify]` settings and the `Destination` value, with the one parser
of its stored form "platform:target" (the outbox's `destination` column). The core stores and
matches destinations as opaque strings; only this module and the desks know what they name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

WEBHOOK = "webhook"


@dataclass(frozen=True)
class NotifySettings:
    """Where escalations are announced, besides each platform's support chat (its desk target, in its
    own section). Secrets (the webhook key) come from the environment."""

    webhook_urls: tuple[str, ...] = ()  # JSON POST, HMAC-SHA256 signed with ESCALATION_WEBHOOK_SECRET
    transcript_messages: int = 8  # the last turns included in a notice
    retry_seconds: float = 30.0  # first retry of a failed delivery; doubles up to an hour
    max_attempts: int = 12  # then the delivery is dead (logged, counted): about 5 hours of retries
    max_age_hours: float = 24.0  # a delivery still failing this long after it was queued is dead too


@dataclass(frozen=True)
class Destination:
    """A desk (the platform whose `Desk` delivers) and a target there (a channel, a chat, a URL)."""

    desk: str
    target: str = ""

    @classmethod
    def parse(cls, stored: str) -> Destination:
        desk, _, target = stored.partition(":")
        return cls(desk, target)

    def __str__(self) -> str:
        return f"{self.desk}:{self.target}" if self.target else self.desk


def configured(notify: NotifySettings, desks: Mapping[str, str]) -> tuple[str, ...]:
    """The configured destinations, in their stored form: the webhooks, then each platform's
    support chat (`desks`: platform -> target)."""
    found = [Destination(WEBHOOK, url) for url in notify.webhook_urls]
    found += [Destination(platform, target) for platform, target in desks.items()]
    return tuple(str(d) for d in found)
