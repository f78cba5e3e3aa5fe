"""Telegram, on python-telegram-bot: polling or webhook, private chats, groups and forum topics.

Pure part: `normalize.to_incoming` (Update -> IncomingMessage | NotText | None). `TelegramChannel`
is the output channel (send / edit with Markdown and a plain-text fallback, the typing indicator);
`TelegramDesk` the support group (a forum topic per escalation, or replies); `TelegramAdapter` owns
the Application's lifecycle. Flood limits and RetryAfter are handled by PTB's AIORateLimiter;
errors go through the one error table (bot/errors.py).

Nothing is confirmed to Telegram before it is stored: the Application's update queue is an
`IntakeQueue`, whose `put` checks and stores each message first, and both the webhook (its 200)
and PTB's polling (the next getUpdates offset) confirm an update only after `put` returned.

This module is the platform's contract (bot/platform.py): its settings, its secrets and its adapter,
whose module imports python-telegram-bot only when Telegram is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.platform import Platform


@dataclass(frozen=True)
class TelegramSettings:
    enabled: bool = False
    mode: Literal["polling", "webhook"] = "polling"  # webhook: served by the web server at webhook_path
    base_url: str = "https://api.telegram.org/bot"  # a self-hosted Bot API server works too
    webhook_url: str = ""  # public https URL that reaches webhook_path (webhook mode)
    webhook_path: str = "/telegram/webhook"
    allowed_user_ids: tuple[str, ...] = ()
    allowed_chat_ids: tuple[str, ...] = ()
    support_chat_id: str = ""  # the support group where agents work, e.g. "-1001234567890" (README Escalation)
    agent_user_ids: tuple[str, ...] = ()  # who may act as an agent in the support group (empty: its admins)
    rate_limit_per_minute: int = 20  # per user; 0 = off
    edit_interval: float = 1.5  # seconds between edits of a streamed reply


PLATFORM = Platform(
    "telegram",
    TelegramSettings,
    "bot.adapters.telegram.adapter:TelegramAdapter",
    secrets=("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"),
    desk="support_chat_id",
    moved={"notify.telegram_chat_id": "support_chat_id"},
)
