"""Slack, on slack-bolt (async): Socket Mode or the HTTP Events API; mentions, DMs and threads.

Pure part: `to_incoming` (an Events API envelope -> IncomingMessage | None). `SlackChannel` is
the output channel (chat.postMessage / chat.update in the conversation's thread); `SlackAdapter`
owns the Bolt app. A message for the bot is checked and stored by a global middleware, which
Bolt runs before the ack (HTTP and Socket Mode); the listener answers it after the ack. What
cannot be stored now gets a 503 (no ack in Socket Mode), so Slack retries it. Its `app.error`
answers with the one error table. Retries are deduped by the core's ledger; slack_sdk's
rate-limit handler waits out 429s.
"""

from bot.adapters.slack.adapter import SlackAdapter
from bot.adapters.slack.channel import SlackChannel
from bot.adapters.slack.normalize import to_incoming

__all__ = ["SlackAdapter", "SlackChannel", "to_incoming"]
