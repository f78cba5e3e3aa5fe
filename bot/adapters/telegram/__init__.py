"""Telegram, on python-telegram-bot: polling or webhook, private chats, groups and forum topics.

Pure part: `to_incoming` (Update -> IncomingMessage | NotText | None). `TelegramChannel` is the
output channel (send / edit with Markdown and a plain-text fallback, the typing indicator);
`TelegramAdapter` owns the Application's lifecycle. Flood limits and RetryAfter are handled by
PTB's AIORateLimiter; errors go through the one error table (bot/errors.py).

Nothing is confirmed to Telegram before it is stored: the Application's update queue is an
`IntakeQueue`, whose `put` checks and stores each message first, and both the webhook (its 200)
and PTB's polling (the next getUpdates offset) confirm an update only after `put` returned.
"""

from bot.adapters.telegram.adapter import MENU, TelegramAdapter
from bot.adapters.telegram.channel import TelegramChannel
from bot.adapters.telegram.normalize import NotText, to_incoming

__all__ = ["MENU", "NotText", "TelegramAdapter", "TelegramChannel", "to_incoming"]
