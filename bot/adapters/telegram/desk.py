"""The Telegram support group as a desk where agents work: in a group with forum topics, one topic
per escalation (named with the customer and the reason); otherwise the notice itself, replied to.
An inline keyboard carries *Take over* / *Resolve*. Refs: a topic notice is "t<topic>,<message>"
(two pieces, each matched exactly: a message in the topic, or a reply to the notice), anything else
"<message>"; pure part: `thread_of` (an agent's message -> the refs it may belong to)."""

from __future__ import annotations

import contextlib
import logging
from html import escape

import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest

from bot.adapters.telegram import PLATFORM as TELEGRAM
from bot.delivery import OutputChannel
from bot.desk import BUTTONS, ChatDesk
from core.escalations import EscalationRecord
from core.events import ConversationKey

log = logging.getLogger(__name__)
TAKE, RESOLVE = "take", "resolve"
TOPIC_NAME = 128  # characters Telegram allows in a topic's name
LIMIT = MessageLimit.MAX_TEXT_LENGTH  # characters in a message (4,096), as the channel cuts them


def keyboard(escalation: EscalationRecord) -> InlineKeyboardMarkup | None:
    """The buttons that still apply; callback data is "<action>:<escalation id>"."""
    buttons = [InlineKeyboardButton(BUTTONS[a], callback_data=f"{a}:{escalation.id}") for a in escalation.actions]
    return InlineKeyboardMarkup([buttons]) if buttons else None


def thread_of(message: Message) -> list[str]:
    """The refs an agent's message may belong to: its topic, or the message it replies to."""
    refs = []
    if message.is_topic_message and message.message_thread_id:
        refs.append(f"t{message.message_thread_id}")
    replied = message.reply_to_message
    if replied is not None and not replied.forum_topic_created:
        refs.append(str(replied.message_id))
    return refs


def _parse(thread: str) -> tuple[int | None, int | None]:
    """(topic, notice message) of a thread: a notice's ref ("t7,42"; "t7:42" as stored before 0012),
    a topic alone ("t7", where an agent wrote), or a message ("42")."""
    if thread.startswith("t"):
        topic, _, message = thread[1:].replace(":", ",").partition(",")
        return int(topic), int(message) if message else None
    return None, int(thread)


class TelegramDesk(ChatDesk):
    """The Desk (bot/desk.py) on the Bot API. The bot must be an admin of the support group, with
    the right to manage topics in a forum (and so it sees every message there)."""

    def __init__(self, bot: telegram.Bot, channel: OutputChannel) -> None:
        super().__init__(channel)
        self.bot = bot
        self._forum: dict[int, bool] = {}

    async def post_notice(self, target: str, escalation: EscalationRecord, text: str) -> str:
        chat = int(target)
        if await self._is_forum(chat):
            key = escalation.key
            name = f"#{escalation.id} {key.platform} {key.chat_id.rsplit('/', 1)[-1]} — {escalation.reason}"
            topic = await self.bot.create_forum_topic(chat, name[:TOPIC_NAME])
            thread = topic.message_thread_id
            sent = await self.bot.send_message(chat, text, message_thread_id=thread, reply_markup=keyboard(escalation))
            return f"t{thread},{sent.message_id}"
        sent = await self.bot.send_message(chat, text, reply_markup=keyboard(escalation))
        return str(sent.message_id)

    def place(self, target: str, thread: str) -> tuple[ConversationKey, str | None]:
        """In the escalation's topic, or in reply to its notice (plain text: the channel's default)."""
        topic, notice = _parse(thread)
        if topic:
            return ConversationKey(TELEGRAM.name, target, str(topic)), None
        return ConversationKey(TELEGRAM.name, target), str(notice) if notice else None

    async def mention(self, target: str, thread: str, agent: str, text: str) -> str:
        """An @username mentions in plain text; a numeric user id is mentioned by a link to the user."""
        if not agent.lstrip("-").isdigit():
            return await super().mention(target, thread, agent, text)
        where, reply_to = self.place(target, thread)
        html = escape(text).replace("{who}", f'<a href="tg://user?id={agent}">{agent}</a>')
        quote = ReplyParameters(int(reply_to), allow_sending_without_reply=True) if reply_to else None
        topic = int(where.thread_id) if where.thread_id else None
        sent = await self.bot.send_message(
            int(target), html, parse_mode=ParseMode.HTML, reply_parameters=quote, message_thread_id=topic
        )
        return str(sent.message_id)

    async def show(self, target: str, thread: str, escalation: EscalationRecord, text: str) -> None:
        _, notice = _parse(thread)
        if notice is None:
            return  # a topic without its notice: nothing to edit
        try:
            await self.bot.edit_message_text(text[:LIMIT], chat_id=int(target), message_id=notice,
                                             reply_markup=keyboard(escalation))  # fmt: skip
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise
        if escalation.resolved_at is not None and thread.startswith("t"):
            with contextlib.suppress(BadRequest):  # a resolved case's topic is closed (it stays readable)
                await self.bot.close_forum_topic(int(target), _parse(thread)[0] or 0)

    async def delete(self, target: str, ref: str) -> None:
        """A notice's topic goes whole (its messages, and its name, which names the customer); other
        refs are one or more messages."""
        if ref.startswith("t"):
            await self.bot.delete_forum_topic(int(target), _parse(ref)[0] or 0)
            return
        for message in ref.split(","):
            with contextlib.suppress(BadRequest):  # already gone
                await self.bot.delete_message(int(target), int(message))

    async def _is_forum(self, chat: int) -> bool:
        if chat not in self._forum:
            self._forum[chat] = bool((await self.bot.get_chat(chat)).is_forum)
        return self._forum[chat]
