"""Slack events as tonebot's messages (pure): `to_incoming`, and the signature headers' first check."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from bot.adapters.slack import PLATFORM as SLACK
from bot.adapters.slack.desk import RELAYED_SUBTYPES
from core.events import ConversationKey, IncomingMessage

log = logging.getLogger(__name__)
PLATFORM = SLACK.name


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
    if event.get("subtype") not in (None, *RELAYED_SUBTYPES) or event.get("bot_id"):  # edits, joins, bots...
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
        message_id=event["ts"],
        is_direct=direct,
        addressed_to_bot=kind == "app_mention" or direct,
    )


def signed_recently(headers: Mapping[str, str]) -> bool:
    """Slack's signature headers are there and the timestamp is within five minutes (checked before
    the body is read; the signature itself is checked on the body)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    if (
        not headers.get("x-slack-signature")
        or not (timestamp.isascii() and timestamp.isdecimal())
        or len(timestamp) > 12
    ):
        return False
    return abs(time.time() - int(timestamp)) <= 300
