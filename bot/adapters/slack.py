"""Slack, on slack-bolt (async): Socket Mode or the HTTP Events API; mentions, DMs and threads.

Pure part: `to_incoming` (an Events API envelope -> IncomingMessage | None).
`SlackAdapter` owns the Bolt app: it acks at once (Bolt runs listeners after the ack), dedupes
retries through the core's ledger in the database, and answers in the thread with a message
that `chat.update` grows as the reply streams. slack_sdk's rate-limit handler waits out 429s.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.adapters.access import allowed
from bot.adapters.streaming import previews, split
from bot.config import Secrets, SlackSettings
from core import metrics
from core.bot import Bot, Event
from core.errors import ConfigError
from core.events import ConversationKey, IncomingMessage, Reply

log = logging.getLogger(__name__)
PLATFORM = "slack"
HELP = "`/tonebot resolve <n>` (support channel) closes an escalation, `/tonebot reset` starts a fresh conversation here, `/tonebot forget` deletes what you wrote to me, `/tonebot mood` shows your recent moods."  # noqa: E501
EMOJI = {"negative": ":worried:", "neutral": ":neutral_face:", "positive": ":slightly_smiling_face:"}


def strip_mention(text: str, bot_user_id: str) -> str:
    return re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", "", text).strip()


def to_incoming(body: dict[str, Any], bot_user_id: str) -> IncomingMessage | None:
    """The common event for an app_mention or a user message; None for what tonebot ignores.

    Thread follow-ups in channels come back with `addressed_to_bot=False`: the adapter answers
    them only in threads the bot already takes part in.
    """
    event = body.get("event") or {}
    kind, user = event.get("type"), event.get("user")
    if kind not in ("app_mention", "message") or not user or user == bot_user_id:
        return None
    if event.get("subtype") or event.get("bot_id"):  # edits, deletions, joins, bot messages
        return None
    text, mention = event.get("text") or "", f"<@{bot_user_id}"
    direct = event.get("channel_type") == "im"
    if kind == "message" and not direct and (mention in text or not event.get("thread_ts")):
        return None  # mentions arrive as app_mention; top-level channel chatter is not for the bot
    thread = event.get("thread_ts") or ("" if direct else event["ts"])
    return IncomingMessage(
        key=ConversationKey(PLATFORM, event["channel"], thread),
        user_id=user,
        text=strip_mention(text, bot_user_id),
        event_id=body.get("event_id") or f"{event['channel']}:{event['ts']}",
        is_direct=direct,
        addressed_to_bot=kind == "app_mention" or direct,
    )


class CountedRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits Retry-After), counted in tonebot_platform_api_retries_total."""

    async def prepare_for_next_attempt_async(self, **kwargs: Any) -> None:
        metrics.PLATFORM_RETRIES.labels("slack").inc()
        await super().prepare_for_next_attempt_async(**kwargs)


class SlackAdapter:
    """Owns the Bolt app and, in Socket Mode, its WebSocket connection."""

    def __init__(self, bot: Bot, settings: SlackSettings, secrets: Secrets, support_channel: str = "") -> None:
        if not secrets.slack_bot_token:
            raise ConfigError("slack is enabled but SLACK_BOT_TOKEN is not set")
        if settings.mode == "socket" and not secrets.slack_app_token:
            raise ConfigError("slack socket mode needs SLACK_APP_TOKEN (or set slack.mode = 'http')")
        if settings.mode == "http" and not secrets.slack_signing_secret:
            raise ConfigError("slack http mode needs SLACK_SIGNING_SECRET")
        self.bot, self.settings, self.secrets = bot, settings, secrets
        self.support_channel = support_channel
        client = AsyncWebClient(token=secrets.slack_bot_token, base_url=settings.api_base_url)
        client.retry_handlers.append(CountedRateLimitRetry(max_retry_count=3))
        self.app = AsyncApp(client=client, signing_secret=secrets.slack_signing_secret or "unused-in-socket-mode")
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self.app.command(settings.command)(self._on_command)
        self.socket: AsyncSocketModeHandler | None = None
        self.bot_user_id = ""

    async def __aenter__(self) -> SlackAdapter:
        identity = await self.app.client.auth_test()
        self.bot_user_id = str(identity["user_id"])
        if self.settings.mode == "socket":
            self.socket = AsyncSocketModeHandler(self.app, self.secrets.slack_app_token)
            await self.socket.connect_async()
        log.info("slack: %s ready (%s mode)", self.bot_user_id, self.settings.mode)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.socket is not None:
            await self.socket.close_async()

    def routes(self) -> list[BaseRoute]:
        if self.settings.mode != "http":
            return []
        handler = AsyncSlackRequestHandler(self.app)

        async def events(request: Request) -> Response:
            return await handler.handle(request)

        return [Route(self.settings.events_path, events, methods=["POST"])]

    def _allowed(self, user_id: str, channel_id: str) -> bool:
        s = self.settings
        return allowed(user_id, channel_id, s.allowed_user_ids, s.allowed_channel_ids)

    async def _on_event(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        msg = to_incoming(body, self.bot_user_id)
        if msg is None or not self._allowed(msg.user_id, msg.key.chat_id):
            return
        if not msg.addressed_to_bot and not await self.bot.knows(msg.key):
            return  # a thread the bot has not joined
        try:
            await self.deliver(client, msg, self.bot.stream(msg))
        except SlackApiError:
            metrics.PLATFORM_ERRORS.labels("slack").inc()
            raise

    async def deliver(self, client: AsyncWebClient, msg: IncomingMessage, events: AsyncIterator[Event]) -> Reply:
        """A placeholder in the thread, grown by chat.update at a throttled pace, then the final text."""
        channel, thread = msg.key.chat_id, msg.key.thread_id or None
        placeholder: str | None = None
        reply = None
        async for item in previews(events, self.settings.edit_interval):
            if isinstance(item, Reply):
                reply = item
            elif placeholder is None:
                posted = await client.chat_postMessage(
                    channel=channel, thread_ts=thread, text=split(item, self.settings.max_chars)[0]
                )
                placeholder = str(posted["ts"])
            else:
                await client.chat_update(channel=channel, ts=placeholder, text=split(item, self.settings.max_chars)[0])
        assert reply is not None, "the core ended without a reply"
        if reply.duplicate or reply.paused:
            return reply  # a retry of an event already answered, or a person has taken over
        first, *rest = split(reply.text, self.settings.max_chars) or ["…"]
        if placeholder is None:
            await client.chat_postMessage(channel=channel, thread_ts=thread, text=first)
        else:
            await client.chat_update(channel=channel, ts=placeholder, text=first)
        for piece in rest:
            await client.chat_postMessage(channel=channel, thread_ts=thread, text=piece)
        return reply

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        user, channel = command["user_id"], command["channel_id"]
        if not self._allowed(user, channel):
            await ack(response_type="ephemeral", text="Sorry, this bot is not available here.")
            return
        action, *args = (command.get("text") or "help").strip().split() or ["help"]
        action = action.lower()
        if action == "resolve":
            text = await self._resolve(channel, user, args)
        elif action == "reset":
            await self.bot.reset(ConversationKey(PLATFORM, channel, ""))
            text = "Fresh start: I will not use our earlier messages in this channel as context."
        elif action == "forget":
            text = f"Done: I deleted {await self.bot.forget(PLATFORM, user)} stored messages."
        elif action == "mood":
            moods = await self.bot.recent_moods(PLATFORM, user)
            text = " ".join(f"{EMOJI[m.label]} {m.label}" for m in moods) or "I have not read any of your messages yet."
        else:
            text = HELP
        await ack(response_type="ephemeral", text=text)

    async def _resolve(self, channel: str, user: str, args: list[str]) -> str:
        if not self.support_channel or channel != self.support_channel:
            return "Escalations are resolved from the support channel."
        if not args or not args[0].lstrip("#").isdigit():
            return "Usage: `/tonebot resolve <escalation number>`"
        record = await self.bot.resolve(int(args[0].lstrip("#")), by=f"slack:{user}")
        return f"Escalation #{record.id} resolved." if record else f"There is no escalation #{args[0]}."
