"""The output channel on the Bot API: send / edit with Markdown and a plain-text fallback, the typing indicator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.constants import ChatAction, MessageLimit, ParseMode
from telegram.error import BadRequest, NetworkError
from telegram.ext import (
    AIORateLimiter,
)

from bot.delivery import OutputChannel, Sent, feedback_data
from core import metrics
from core.events import ConversationKey

log = logging.getLogger(__name__)


class RetryingRateLimiter(AIORateLimiter):
    """PTB's limiter (flood limits, RetryAfter waited out exactly) plus backoff on network errors."""

    attempts = 4

    async def process_request(self, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(self.attempts):
            try:
                return await super().process_request(*args, **kwargs)
            except BadRequest:
                metrics.PLATFORM_ERRORS.labels("telegram").inc()
                raise
            except NetworkError as exc:
                if attempt == self.attempts - 1:
                    metrics.PLATFORM_ERRORS.labels("telegram").inc()
                    raise
                metrics.PLATFORM_RETRIES.labels("telegram").inc()
                log.warning("Bot API network error (%s); retrying", exc)
                await asyncio.sleep(0.5 * 2**attempt)
        return None


class TelegramChannel(OutputChannel):
    limit = MessageLimit.MAX_TEXT_LENGTH

    def __init__(self, bot: telegram.Bot, interval: float) -> None:
        self.bot, self.interval = bot, interval

    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        quote = ReplyParameters(int(reply_to), allow_sending_without_reply=True) if reply_to else None
        message = await _markdown_or_plain(
            lambda mode: self.bot.send_message(
                int(conversation.chat_id), text, parse_mode=mode, reply_parameters=quote,
                message_thread_id=int(conversation.thread_id) if conversation.thread_id else None,
            ),
            markdown,
        )  # fmt: skip
        return Sent(conversation, str(message.message_id))

    async def delete(self, sent: Sent) -> None:
        await self.bot.delete_message(int(sent.conversation.chat_id), int(sent.id))

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        chat, message_id = int(sent.conversation.chat_id), int(sent.id)
        try:
            await _markdown_or_plain(
                lambda mode: self.bot.edit_message_text(text, chat_id=chat, message_id=message_id, parse_mode=mode),
                markdown,
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise
        return sent

    async def ask_feedback(self, sent: Sent, text: str, answer_id: int, *, markdown: bool = False) -> None:
        thumbs = [InlineKeyboardButton(label, callback_data=feedback_data(answer_id, thumb)) for thumb, label in
                  (("up", "👍"), ("down", "👎"))]  # fmt: skip
        await self.bot.edit_message_reply_markup(
            int(sent.conversation.chat_id), int(sent.id), reply_markup=InlineKeyboardMarkup([thumbs])
        )

    @contextlib.asynccontextmanager
    async def typing(self, conversation: ConversationKey) -> AsyncIterator[None]:
        chat, thread = int(conversation.chat_id), int(conversation.thread_id) if conversation.thread_id else None

        async def keep_typing() -> None:
            while True:  # the indicator lasts ~5 s; renew it until the reply is done
                with contextlib.suppress(NetworkError):
                    await self.bot.send_chat_action(chat, ChatAction.TYPING, message_thread_id=thread)
                await asyncio.sleep(4)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()


async def _markdown_or_plain(send: Callable[[str | None], Awaitable[Any]], markdown: bool) -> Any:
    """Markdown that Telegram refuses to parse is sent again as plain text."""
    try:
        return await send(ParseMode.MARKDOWN if markdown else None)
    except BadRequest as exc:
        if not markdown or "parse" not in exc.message.lower():
            raise
        return await send(None)
