"""Where escalations go: the `[notify]` settings and the `Destination` value, with the one parser
of its stored form "platform:target" (the outbox's `destination` column). The core stores and
matches destinations as opaque strings; only this module and the desks know what they name."""

from __future__ import annotations

from dataclasses import dataclass

WEBHOOK = "webhook"


@dataclass(frozen=True)
class NotifySettings:
    """Where escalations are announced. Secrets (tokens, the webhook key) come from the environment."""

    webhook_urls: tuple[str, ...] = ()  # JSON POST, HMAC-SHA256 signed with ESCALATION_WEBHOOK_SECRET
    slack_channel: str = ""  # e.g. "C0SUPPORT1", posted with SLACK_BOT_TOKEN
    telegram_chat_id: str = ""  # e.g. "-1001234567890", posted with TELEGRAM_BOT_TOKEN
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


def configured(notify: NotifySettings) -> tuple[str, ...]:
    """The configured destinations, in their stored form."""
    found = [Destination(WEBHOOK, url) for url in notify.webhook_urls]
    if notify.slack_channel:
        found.append(Destination("slack", notify.slack_channel))
    if notify.telegram_chat_id:
        found.append(Destination("telegram", notify.telegram_chat_id))
    return tuple(str(d) for d in found)
