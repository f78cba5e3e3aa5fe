"""Telegram's adapter: the Application's lifecycle (polling or webhook), every update stored before
it is confirmed (`IntakeQueue`), the support desk's messages and buttons."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from telegram import BotCommand, Message, Update
from telegram.error import NetworkError, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bot import commands
from bot.adapters.telegram import TelegramSettings
from bot.adapters.telegram.channel import RetryingRateLimiter, TelegramChannel
from bot.adapters.telegram.desk import TelegramDesk, thread_of
from bot.adapters.telegram.normalize import NOT_TEXT, PLATFORM, NotText, key_of, to_incoming
from bot.admission import Admission, intake
from bot.bodies import PLATFORM_BODY_BYTES, read_body
from bot.delivery import deliver, feedback_click
from bot.desk import act, escalation_of, from_agent
from bot.errors import answer
from core.bot import Bot
from core.errors import ConfigError
from core.events import Agent, AgentMessage, IncomingMessage

log = logging.getLogger(__name__)
MENU = [BotCommand(name, description) for name, description in commands.menu()]
UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]  # messages; the support desk's buttons


class IntakeQueue(asyncio.Queue[object]):
    """PTB's update queue, storing each message before it is queued (see the module's docstring)."""

    def __init__(self, intake: Callable[[object], Awaitable[bool]]) -> None:
        super().__init__()
        self.intake = intake

    async def put(self, item: object) -> None:
        if await self.intake(item):
            await super().put(item)


class TelegramAdapter:
    """Owns the python-telegram-bot Application: an async context manager around its lifecycle."""

    def __init__(self, bot: Bot, settings: TelegramSettings, secrets: Mapping[str, str]) -> None:
        token, self.secret = secrets.get("TELEGRAM_BOT_TOKEN", ""), secrets.get("TELEGRAM_WEBHOOK_SECRET", "")
        if not token:
            raise ConfigError("telegram is enabled but TELEGRAM_BOT_TOKEN is not set")
        if settings.mode == "webhook" and not (settings.webhook_url and self.secret):
            raise ConfigError("telegram webhook mode needs telegram.webhook_url and TELEGRAM_WEBHOOK_SECRET")
        self.bot, self.settings = bot, settings
        self.support_chat_id = support_chat_id = settings.support_chat_id
        self._admins: tuple[float, set[int]] | None = None  # (when asked, the support group's admins)
        self.admission = Admission(settings.allowed_user_ids, settings.allowed_chat_ids, settings.rate_limit_per_minute)
        builder = (
            Application.builder()
            .token(token)
            .base_url(settings.base_url)
            .base_file_url(settings.base_url.replace("/bot", "/file/bot"))
            .rate_limiter(RetryingRateLimiter(max_retries=3))
            .concurrent_updates(True)  # the core orders turns per conversation
            .update_queue(IntakeQueue(self._intake))
        )
        if settings.mode == "webhook":
            builder = builder.updater(None)
        self.application = builder.build()
        self.channel = TelegramChannel(self.application.bot, settings.edit_interval)
        self.desk = TelegramDesk(self.application.bot, self.channel) if support_chat_id else None
        self.application.add_handler(CommandHandler(list(commands.COMMANDS), self._on_command))
        self.application.add_handler(MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, self._on_message))
        self.application.add_handler(CallbackQueryHandler(self._on_button))
        self.application.add_error_handler(self._on_error)

    async def __aenter__(self) -> TelegramAdapter:
        app = self.application
        await app.initialize()
        await app.bot.set_my_commands(MENU)
        await app.start()
        if app.updater is not None:
            await app.updater.start_polling(allowed_updates=UPDATES)
        else:
            await app.bot.set_webhook(self.settings.webhook_url, secret_token=self.secret, allowed_updates=UPDATES)
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
            return JSONResponse({"error": "wrong or missing secret token"}, 403)
        try:
            data = json.loads(await read_body(request, PLATFORM_BODY_BYTES))
            if not isinstance(data, dict) or type(data.get("update_id")) is not int:
                raise ValueError("no update_id")
            update = Update.de_json(data, self.application.bot)
            if (m := update.effective_message) and not all(isinstance(v, str | None) for v in (m.text, m.caption)):
                raise TypeError("a message text that is not a string")
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
            return JSONResponse({"error": "the body is not a Telegram update"}, 400)
        if self._for_customers(update):  # loading or full: 503, Telegram redelivers it (agents need no model)
            self.bot.admit()
        await self.application.update_queue.put(update)  # stored (or refused) before the 200
        return Response(status_code=200)

    def _for_customers(self, update: Update) -> bool:
        """An update the model may be needed for: not a button press, nor a message in the support chat."""
        if update.callback_query is not None:
            return False
        message = update.effective_message
        return message is None or str(message.chat.id) != self.support_chat_id

    async def _intake(self, update: object) -> bool:
        """Before an update is confirmed: refuse what admission refuses (told once, here), store a
        message for the bot, and say whether the handlers get it. A message that cannot be stored
        now (model loading or full, database down) raises: the webhook answers 503/500 and polling
        retries the same getUpdates offset, so Telegram redelivers it."""
        if not isinstance(update, Update):
            return True
        message = update.message or update.edited_message
        agent = self.desk and message and str(message.chat.id) == self.support_chat_id
        if agent and message and not filters.COMMAND.check_update(update):  # an agent: not a customer's message
            await self._relay(update.update_id, message, edited=update.edited_message is not None)
            return False
        found = to_incoming(update, self.application.bot.bot)
        if not isinstance(found, IncomingMessage):
            return True
        try:  # a command is not stored: only admission applies
            verdict = await intake(self.bot, self.admission, found, store=not filters.COMMAND.check_update(update))
        except Exception as exc:
            if self.application.updater is None:
                raise  # the webhook's answer is the error table's 503 / 500
            raise NetworkError(f"not stored, so not confirmed: {exc!r}") from exc  # polling retries the offset
        if not verdict.stored and verdict.text:
            with contextlib.suppress(TelegramError):
                await self.channel.post(found.key, verdict.text, reply_to=found.message_id)
        return verdict.stored

    async def _relay(self, update_id: int, message: Message, edited: bool = False) -> None:
        """An agent's message in an escalation's topic (or in reply to its notice or a relayed turn)
        goes to that customer, stored before the update is confirmed, once per update id. What
        cannot go (an edit, an attachment, someone who is not an agent) is said in the thread."""
        assert self.desk is not None
        if (found := await escalation_of(self.bot, PLATFORM, self.support_chat_id, thread_of(message))) is None:
            return  # the team's own chatter
        record, ref = found
        user = message.from_user
        text = message.text or message.caption or ""
        problem = await self._not_an_agent(user.id if user else 0) or (
            "edits do not reach the customer: send the correction as a new message" if edited else ""
        )
        if not problem and not message.text:
            problem = "only text reaches the customer" + (" (the caption was sent, not the attachment)" if text else "")
        send = bool(text) and not edited and "agent" not in problem  # a caption still goes
        agent = Agent(str(user.id), user.full_name, PLATFORM) if user else Agent("", "", PLATFORM)
        sent = AgentMessage(record.id, agent, text, f"{PLATFORM}:{update_id}")
        await from_agent(self.bot.handoff, self.desk, self.support_chat_id, ref, sent, problem, send)

    async def _not_an_agent(self, user_id: int) -> str:
        """Why this person may not act as an agent ("" when they may): with `telegram.agent_user_ids`
        set, only those people; otherwise the support group's administrators (asked every 5 minutes)."""
        if self.settings.agent_user_ids:
            return "" if str(user_id) in self.settings.agent_user_ids else "you are not in telegram.agent_user_ids"
        now = asyncio.get_running_loop().time()
        if self._admins is None or now - self._admins[0] > 300:
            members = await self.application.bot.get_chat_administrators(int(self.support_chat_id))
            self._admins = (now, {m.user.id for m in members})
        return "" if user_id in self._admins[1] else "only the group's administrators act as agents"

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """👍 / 👎 under an answer; Take over / Resolve under a notice: only in the support group."""
        query = update.callback_query
        if query is None:
            return
        if isinstance(query.message, Message):
            said = await feedback_click(self.bot, key_of(query.message), query.data or "", str(query.from_user.id))
            if said is not None:
                await query.answer(said)
                return
        if self.desk is None:
            await query.answer()
            return
        action, _, number = (query.data or "").partition(":")
        if query.message is None or str(query.message.chat.id) != self.support_chat_id or not number.isdigit():
            await query.answer()
            return
        if refusal := await self._not_an_agent(query.from_user.id):
            await query.answer(refusal)
            return
        agent = Agent(str(query.from_user.id), query.from_user.full_name, PLATFORM)
        await query.answer(await act(self.bot.handoff, action, int(number), agent))

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        found = to_incoming(update, context.bot.bot)
        if isinstance(found, NotText):
            await self.channel.post(found.key, NOT_TEXT, reply_to=found.message_id)
        elif found is not None:
            await deliver(self.channel, self.bot, found, reply_to=found.message_id)

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        found = to_incoming(update, context.bot.bot)
        if not isinstance(found, IncomingMessage):
            return
        name, *args = found.text.split()
        in_support = bool(self.support_chat_id) and found.key.chat_id == self.support_chat_id
        ctx = commands.Context(self.bot, found, args, prefix="/", in_support=in_support)
        if text := await commands.run(name.lstrip("/"), ctx):
            await self.channel.send(found.key, text)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB's error handler: the error table's line, as a reply to the message that failed."""
        assert context.error is not None
        text = answer(context.error).text
        found = to_incoming(update, self.application.bot.bot) if isinstance(update, Update) else None
        if found is not None:
            with contextlib.suppress(Exception):  # the platform itself may be what failed
                await self.channel.post(found.key, text, reply_to=found.message_id)
