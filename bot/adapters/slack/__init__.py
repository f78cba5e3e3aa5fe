"""Slack, on slack-bolt (async): Socket Mode or the HTTP Events API; mentions, DMs and threads.

Pure part: `normalize.to_incoming` (an Events API envelope -> IncomingMessage | None).
`SlackChannel` is the output channel (chat.postMessage / chat.update in the conversation's
thread); `SlackDesk` the support channel (a thread per escalation); `SlackAdapter` owns the Bolt
app. A message for the bot is checked and stored by a global middleware, which Bolt runs before
the ack (HTTP and Socket Mode); the listener answers it after the ack. What cannot be stored now
gets a 503 (no ack in Socket Mode), so Slack retries it. Its `app.error` answers with the one error
table. Retries are deduped by the core's ledger; slack_sdk's rate-limit handler waits out 429s.

This module is the platform's contract (bot/platform.py): its settings, its secrets and its adapter,
whose module imports slack-bolt only when Slack is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.platform import Platform


@dataclass(frozen=True)
class SlackSettings:
    enabled: bool = False
    mode: Literal["socket", "http"] = "socket"  # socket: no public URL needed | http: Events API at events_path
    api_base_url: str = "https://slack.com/api/"
    events_path: str = "/slack/events"
    command: str = "/tonebot"
    allowed_user_ids: tuple[str, ...] = ()
    allowed_channel_ids: tuple[str, ...] = ()
    support_channel: str = ""  # the channel where agents work, e.g. "C0SUPPORT1" (README Escalation)
    agent_user_ids: tuple[str, ...] = ()  # who may act as an agent in the support channel (empty: its members)
    rate_limit_per_minute: int = 20  # per user; 0 = off
    edit_interval: float = 1.5  # seconds between chat.update calls while a reply streams
    max_chars: int = 3500  # longer replies are split into several messages


PLATFORM = Platform(
    "slack",
    SlackSettings,
    "bot.adapters.slack.adapter:SlackAdapter",
    secrets=("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"),
    desk="support_channel",
    moved={"notify.slack_channel": "support_channel"},
)
