"""Telegram, on python-telegram-bot: polling or webhook, private chats and groups.

Pure part: `to_incoming` (Update -> IncomingMessage | NotText | None).
`TelegramAdapter` owns the Application's lifecycle and sends replies: typing indicator,
streamed by editing one message at a throttled pace, split at 4096 characters, Markdown
with a plain-text fallback. Flood limits and RetryAfter are handled by PTB's AIORateLimiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import BotCommand, Message, ReplyParameters, Update, User
from telegram.constants import ChatAction, ChatType, MessageEntityType, MessageLimit, ParseMode
from telegram.error import BadRequest, NetworkError
from telegram.ext import AIORateLimiter, Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.adapters.access import RateLimit, allowed
from bot.adapters.streaming import previews, split
from bot.config import Secrets, TelegramSettings
from core import metrics
from core.bot import Bot, Event
from core.errors import BotError, ConfigError
from core.events import ConversationKey, IncomingMessage, Reply

log = logging.getLogger(__name__)
PLATFORM = "telegram"
LIMIT = MessageLimit.MAX_TEXT_LENGTH
NOT_TEXT = "Sorry, I can only read text messages. Please type what you would like to say."
REFUSED = "Sorry, this bot is private and cannot talk with you here."
SLOW_DOWN = "You are sending messages faster than I can answer. Please wait a minute and try again."
GREETING = (
    "Hi! I am tonebot. Write to me and I will do my best to help; if things go wrong, "
    "I will stay calm and get a person involved. In groups, mention me or reply to my messages."
)
HELP = "/reset starts a fresh conversation, /forget deletes what you wrote to me, /mood shows your recent moods."
COMMANDS = [
    BotCommand("start", "what this bot does"),
    BotCommand("help", "how to use it"),
    BotCommand("reset", "start a fresh conversation"),
    BotCommand("forget", "delete my stored messages"),
    BotCommand("mood", "the mood of my recent messages"),
]
EMOJI = {"negative": "😟", "neutral": "😐", "positive": "🙂"}


@dataclass(frozen=True)
class NotText:
    """A non-text message (photo, sticker, voice, file...) addressed to the bot."""

    chat_id: int
    thread_id: int | None
    message_id: int


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


def _thread(message: Message) -> int | None:
    return message.message_thread_id if message.is_topic_message else None


def strip_mention(text: str, username: str) -> str:
    return re.sub(rf"@{re.escape(username)}\b", "", text, flags=re.IGNORECASE).strip()


def to_incoming(update: Update, me: User) -> IncomingMessage | NotText | None:
    """The common event for a new message addressed to the bot; None for everything to ignore."""
    message = update.message  # edited messages and channel posts arrive in other fields
    sender = message.from_user if message else None
    if message is None or sender is None or sender.is_bot or not _addressed(message, me):
        return None
    if message.text is None:
        media = (message.photo, message.sticker, message.voice, message.document, message.video, message.audio,
                 message.animation, message.video_note)  # fmt: skip
        return NotText(message.chat.id, _thread(message), message.message_id) if any(media) else None
    thread = _thread(message)
    return IncomingMessage(
        key=ConversationKey(PLATFORM, str(message.chat.id), str(thread) if thread else ""),
        user_id=str(sender.id),
        user_name=sender.full_name,
        text=strip_mention(message.text, me.username or ""),
        event_id=str(update.update_id),
        is_direct=message.chat.type == ChatType.PRIVATE,
        addressed_to_bot=True,
        received_at=message.date,
    )


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


class TelegramAdapter:
    """Owns the python-telegram-bot Application: an async context manager around its lifecycle."""

    def __init__(self, bot: Bot, settings: TelegramSettings, secrets: Secrets, support_chat_id: str = "") -> None:
        if not secrets.telegram_bot_token:
            raise ConfigError("telegram is enabled but TELEGRAM_BOT_TOKEN is not set")
        if settings.mode == "webhook" and not (settings.webhook_url and secrets.telegram_webhook_secret):
            raise ConfigError("telegram webhook mode needs telegram.webhook_url and TELEGRAM_WEBHOOK_SECRET")
        self.bot, self.settings, self.secret = bot, settings, secrets.telegram_webhook_secret
        self.support_chat_id = support_chat_id
        self.rate = RateLimit(settings.rate_limit_per_minute)
        self._refused: set[str] = set()
        builder = (
            Application.builder()
            .token(secrets.telegram_bot_token)
            .base_url(settings.base_url)
            .base_file_url(settings.base_url.replace("/bot", "/file/bot"))
            .rate_limiter(RetryingRateLimiter(max_retries=3))
            .concurrent_updates(True)  # the core orders turns per conversation
        )
        if settings.mode == "webhook":
            builder = builder.updater(None)
        self.application = builder.build()
        commands: dict[str, Callable[[Update, IncomingMessage], Coroutine[Any, Any, str]]] = {
            "start": self._start, "help": self._help, "reset": self._reset, "forget": self._forget, "mood": self._mood,
            "resolve": self._resolve,
        }  # fmt: skip
        for name, answer in commands.items():
            self.application.add_handler(CommandHandler(name, self._command(answer)))
        self.application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, self._on_message))
        self.application.add_error_handler(self._on_error)

    async def __aenter__(self) -> TelegramAdapter:
        app = self.application
        await app.initialize()
        await app.bot.set_my_commands(COMMANDS)
        await app.start()
        if app.updater is not None:
            await app.updater.start_polling(allowed_updates=[Update.MESSAGE])
        else:
            await app.bot.set_webhook(self.settings.webhook_url, secret_token=self.secret, allowed_updates=["message"])
        log.info("telegram: @%s ready (%s)", app.bot.username, self.settings.mode)
        return self

    async def __aexit__(self, *_: object) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        await app.stop()
        await app.shutdown()

    def routes(self) -> list[BaseRoute]:
        return [Route(self.settings.webhook_path, self._webhook, methods=["POST"])] if self.secret else []

    async def _webhook(self, request: Request) -> Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return Response("forbidden", status_code=403)
        try:
            update = Update.de_json(await request.json(), self.application.bot)
        except ValueError:
            return Response("invalid update", status_code=400)
        await self.application.update_queue.put(update)
        return Response(status_code=200)

    def _admit(self, msg: IncomingMessage) -> str | None:
        """None when the user may go on; otherwise the one line to answer (or "" for silence)."""
        s = self.settings
        if not allowed(msg.user_id, msg.key.chat_id, s.allowed_user_ids, s.allowed_chat_ids):
            first = msg.user_id not in self._refused
            self._refused.add(msg.user_id)
            return REFUSED if first else ""
        return None if self.rate.hit(msg.user_id) else SLOW_DOWN

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        found = to_incoming(update, context.bot.bot)
        if found is None:
            return
        if isinstance(found, NotText):
            await context.bot.send_message(
                found.chat_id, NOT_TEXT, message_thread_id=found.thread_id,
                reply_parameters=ReplyParameters(found.message_id, allow_sending_without_reply=True),
            )  # fmt: skip
            return
        assert update.message is not None
        if (answer := self._admit(found)) is not None:
            if answer:
                await update.message.reply_text(answer)
            return
        async with self._typing(update.message):
            reply = await self.deliver(update.message, self.bot.stream(found))
        log.info(
            "telegram %s: %s, escalated=%s", found.event_id, reply.mood.label if reply.mood else "-", reply.escalated
        )

    def _command(
        self, answer: Callable[[Update, IncomingMessage], Coroutine[Any, Any, str]]
    ) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
        async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            found = to_incoming(update, context.bot.bot)
            if not isinstance(found, IncomingMessage) or update.message is None:
                return
            refusal = self._admit(found)
            text = refusal if refusal is not None else await answer(update, found)
            if text:
                await update.message.reply_text(text, do_quote=False)

        return handle

    async def _resolve(self, _: Update, msg: IncomingMessage) -> str:
        if not self.support_chat_id or msg.key.chat_id != self.support_chat_id:
            return "Escalations are resolved from the support chat."
        number = msg.text.split()[1] if len(msg.text.split()) > 1 else ""
        if not number.lstrip("#").isdigit():
            return "Usage: /resolve <escalation number>"
        record = await self.bot.resolve(int(number.lstrip("#")), by=f"telegram:{msg.user_name or msg.user_id}")
        return f"Escalation #{record.id} resolved." if record else f"There is no escalation #{number}."

    async def _start(self, _: Update, msg: IncomingMessage) -> str:
        return f"{GREETING}\n\n{HELP}"

    async def _help(self, _: Update, msg: IncomingMessage) -> str:
        return HELP

    async def _reset(self, _: Update, msg: IncomingMessage) -> str:
        await self.bot.reset(msg.key)
        return "Fresh start: I will not use our earlier messages as context."

    async def _forget(self, _: Update, msg: IncomingMessage) -> str:
        deleted = await self.bot.forget(PLATFORM, msg.user_id)
        return f"Done: I deleted {deleted} stored messages (yours and my answers to them)."

    async def _mood(self, _: Update, msg: IncomingMessage) -> str:
        moods = await self.bot.recent_moods(PLATFORM, msg.user_id)
        if not moods:
            return "I have not read any of your messages here yet."
        return "Your recent moods: " + " ".join(f"{EMOJI[m.label]} {m.label}" for m in moods)

    @contextlib.asynccontextmanager
    async def _typing(self, message: Message) -> AsyncIterator[None]:
        async def keep_typing() -> None:
            while True:  # the indicator lasts ~5 s; renew it until the reply is done
                with contextlib.suppress(NetworkError):
                    await message.get_bot().send_chat_action(
                        message.chat_id, ChatAction.TYPING, message_thread_id=_thread(message)
                    )
                await asyncio.sleep(4)

        task = asyncio.create_task(keep_typing())
        try:
            yield
        finally:
            task.cancel()

    async def deliver(self, message: Message, events: AsyncIterator[Event]) -> Reply:
        """Stream the reply into one message (edited at a throttled pace), then finish it."""
        sent: Message | None = None
        reply = None
        async for item in previews(events, self.settings.edit_interval):
            if isinstance(item, Reply):
                reply = item
            else:
                sent = await self._put(message, sent, split(item, LIMIT)[0], markdown=False)
        if reply is None:
            raise BotError("the core ended without a reply")
        if reply.duplicate or reply.paused:
            return reply  # answered on the first delivery, or a person has taken over
        first, *rest = split(reply.text, LIMIT) or ["…"]
        sent = await self._put(message, sent, first, markdown=True)
        for piece in rest:
            sent = await self._put(message, None, piece, markdown=True)
        return reply

    async def _put(self, message: Message, sent: Message | None, text: str, markdown: bool) -> Message:
        """Send or edit; Markdown that Telegram rejects is sent again as plain text."""
        mode = ParseMode.MARKDOWN if markdown else None
        try:
            if sent is None:
                return await message.reply_text(text, parse_mode=mode, do_quote=True)
            edited = await sent.edit_text(text, parse_mode=mode)
            return edited if isinstance(edited, Message) else sent
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return sent or message
            if mode is None or "parse" not in exc.message.lower():
                raise
            return await self._put(message, sent, text, markdown=False)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed", exc_info=context.error)
        if isinstance(update, Update) and update.effective_message is not None:
            with contextlib.suppress(Exception):
                await update.effective_message.reply_text("Sorry, something went wrong. Please try again.")
