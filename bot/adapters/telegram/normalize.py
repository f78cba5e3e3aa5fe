"""Telegram updates as tonebot's messages (pure): `to_incoming`."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from telegram import Message, Update, User
from telegram.constants import ChatType, MessageEntityType

from bot.adapters.telegram import PLATFORM as TELEGRAM
from core.events import ConversationKey, IncomingMessage

log = logging.getLogger(__name__)
PLATFORM = TELEGRAM.name
NOT_TEXT = "Sorry, I can only read text messages. Please type what you would like to say."


@dataclass(frozen=True)
class NotText:
    """A non-text message (photo, sticker, voice, file...) addressed to the bot."""

    key: ConversationKey
    message_id: str


def _addressed(message: Message, me: User) -> bool:
    if message.chat.type == ChatType.PRIVATE:
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == me.id:
        return True
    mention = f"@{me.username}".lower()
    entities = message.parse_entities() or message.parse_caption_entities()
    for entity, text in entities.items():
        if entity.type == MessageEntityType.MENTION and text.lower() == mention:
            return True
        if entity.type == MessageEntityType.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
        if entity.type == MessageEntityType.BOT_COMMAND and entity.offset == 0:
            return "@" not in text or text.lower().endswith(mention)
    return False


def strip_mention(text: str, username: str) -> str:
    return re.sub(rf"@{re.escape(username)}\b", "", text, flags=re.IGNORECASE).strip()


def to_incoming(update: Update, me: User) -> IncomingMessage | NotText | None:
    """The common event for a new message addressed to the bot; None for everything to ignore."""
    message = update.message  # edited messages and channel posts arrive in other fields
    sender = message.from_user if message else None
    if message is None or sender is None or sender.is_bot or not _addressed(message, me):
        return None
    key = key_of(message)
    if message.text is None:
        media = (message.photo, message.sticker, message.voice, message.document, message.video, message.audio,
                 message.animation, message.video_note)  # fmt: skip
        return NotText(key, str(message.message_id)) if any(media) else None
    return IncomingMessage(
        key=key,
        user_id=str(sender.id),
        user_name=sender.full_name,
        text=strip_mention(message.text, me.username or ""),
        event_id=str(update.update_id),
        message_id=str(message.message_id),
        is_direct=message.chat.type == ChatType.PRIVATE,
        addressed_to_bot=True,
        received_at=message.date,
    )


def key_of(message: Message) -> ConversationKey:
    """The conversation a message is in: its chat, and its forum topic if it is in one."""
    thread = message.message_thread_id if message.is_topic_message else None
    return ConversationKey(PLATFORM, str(message.chat.id), str(thread) if thread else "")
