"""Slack's adapter: the Bolt app (Socket Mode or HTTP), every event stored before the ack, the
support desk's replies and buttons."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot import commands
from bot.adapters.slack import SlackSettings
from bot.adapters.slack.channel import FEEDBACK, CountedRateLimitRetry, SlackChannel
from bot.adapters.slack.desk import RESOLVE, TAKE, AgentReply, SlackDesk, agent_reply
from bot.adapters.slack.normalize import PLATFORM, signed_recently, to_incoming
from bot.admission import Admission, intake
from bot.bodies import PLATFORM_BODY_BYTES, read_body
from bot.delivery import deliver, feedback_click
from bot.desk import act, escalation_of, from_agent
from bot.errors import answer
from core import metrics
from core.bot import Bot
from core.errors import Busy, ConfigError
from core.events import Agent, AgentMessage, ConversationKey, IncomingMessage

log = logging.getLogger(__name__)


class SlackAdapter:
    """Owns the Bolt app and, in Socket Mode, its WebSocket connection."""

    def __init__(self, bot: Bot, settings: SlackSettings, secrets: Mapping[str, str]) -> None:
        token, self.app_token = secrets.get("SLACK_BOT_TOKEN", ""), secrets.get("SLACK_APP_TOKEN", "")
        self.signing_secret = secrets.get("SLACK_SIGNING_SECRET", "")
        if not token:
            raise ConfigError("slack is enabled but SLACK_BOT_TOKEN is not set")
        if settings.mode == "socket" and not self.app_token:
            raise ConfigError("slack socket mode needs SLACK_APP_TOKEN (or set slack.mode = 'http')")
        if settings.mode == "http" and not self.signing_secret:
            raise ConfigError("slack http mode needs SLACK_SIGNING_SECRET")
        self.bot, self.settings = bot, settings
        self.support_channel = support_channel = settings.support_channel
        self.admission = Admission(
            settings.allowed_user_ids, settings.allowed_channel_ids, settings.rate_limit_per_minute
        )
        client = AsyncWebClient(token=token, base_url=settings.api_base_url)
        client.retry_handlers.append(CountedRateLimitRetry(max_retry_count=3))
        self.channel = SlackChannel(client, settings.max_chars, settings.edit_interval)
        plain = SlackChannel(client, settings.max_chars, settings.edit_interval, plain=True)
        self.desk = SlackDesk(client, plain) if support_channel else None
        self.app = AsyncApp(client=client, signing_secret=self.signing_secret or "unused-in-socket-mode")
        self.app.middleware(self._intake)
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self.app.command(settings.command)(self._on_command)
        self.app.action(TAKE)(self._on_button)
        self.app.action(RESOLVE)(self._on_button)
        self.app.action(FEEDBACK)(self._on_feedback)
        self.app.error(self._on_error)
        self.socket: AsyncSocketModeHandler | None = None
        self.bot_user_id = ""

    async def __aenter__(self) -> SlackAdapter:
        identity = await self.app.client.auth_test()
        self.bot_user_id = str(identity["user_id"])
        if self.settings.mode == "socket":
            self.socket = AsyncSocketModeHandler(self.app, self.app_token)
            await self.socket.connect_async()
        if self.support_channel and not self.settings.agent_user_ids:
            with contextlib.suppress(SlackApiError, KeyError):
                info = await self.app.client.conversations_info(channel=self.support_channel)
                if not info["channel"].get("is_private"):
                    log.warning(
                        "slack: the support channel %s is public and slack.agent_user_ids is empty: anyone "
                        "who joins it can take over conversations and write to customers",
                        self.support_channel,
                    )
        log.info("slack: %s ready (%s mode)", self.bot_user_id, self.settings.mode)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.socket is not None:
            await self.socket.close_async()

    def routes(self) -> list[BaseRoute]:
        if self.settings.mode != "http":
            return []
        verifier = SignatureVerifier(self.signing_secret)

        async def events(request: Request) -> Response:
            # Bolt parses the body before it checks the signature: here nothing is read without the
            # signature's headers and a fresh timestamp, and nothing is parsed before it checks out
            if not signed_recently(request.headers):
                return JSONResponse({"error": "missing or stale Slack signature headers"}, 401)
            raw = await read_body(request, PLATFORM_BODY_BYTES)
            try:
                text = raw.decode()
            except UnicodeDecodeError:  # Slack signs UTF-8 only
                text = None
            if text is None or not verifier.is_valid_request(text, dict(request.headers)):
                return JSONResponse({"error": "invalid or missing Slack signature"}, 401)
            try:  # signed, but still not a Slack payload: a 400, not Bolt's traceback
                parsed = parse_body(text, request.headers.get("content-type"))
            except (ValueError, RecursionError):
                parsed = None
            if not isinstance(parsed, dict):
                return JSONResponse({"error": "the body is not a Slack payload"}, 400)
            event = parsed["event"] if isinstance(parsed.get("event"), dict) else {}
            if parsed.get("type") == "event_callback" and event.get("channel") != self.support_channel:
                self.bot.admit()  # a customer's, while loading or full: 503, Slack redelivers it (agents need no model)
            if parsed.get("type") == "event_callback" and not self.bot_user_id:
                raise Busy("the Slack adapter is still starting")
            try:
                response = to_starlette_response(await self.app.async_dispatch(to_async_bolt_request(request, raw)))
            except (TypeError, AttributeError, KeyError, ValueError) as exc:
                response = JSONResponse({"error": repr(exc)}, 500)
            if response.status_code >= 500 and response.status_code != 503:  # 503: not stored, Slack retries
                # Bolt acks before the listeners run: another 5xx is a body it could not read
                log.warning("slack: a signed body Bolt could not read (%s)", bytes(response.body)[:200])
                return JSONResponse({"error": "the body is not a Slack payload"}, 400)
            return response

        return [Route(self.settings.events_path, events, methods=["POST"])]

    async def _intake(
        self, body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Before the ack: a message for the bot is refused (admission, bad input) or stored; the
        verdict goes to the listener in Bolt's context. Not storable now: a 503, Slack retries."""
        event = body.get("type") == "event_callback"
        if event and (reply := agent_reply(body, self.support_channel, self.bot_user_id)) is not None:
            return await self._relay(reply)  # an agent in a notice's thread: stored and relayed, or a 503
        msg = to_incoming(body, self.bot_user_id) if event else None
        if msg is not None and (msg.addressed_to_bot or await self.bot.knows(msg.key)):
            try:
                verdict = await intake(self.bot, self.admission, msg)
            except Exception as exc:
                log.warning("slack: event %s not stored (%s); Slack will retry it", msg.event_id, exc)
                retry = str(getattr(exc, "retry_after", 5))
                error = json.dumps({"error": "not stored, retry later"})
                return BoltResponse(status=503, body=error, headers={"Retry-After": retry})
            context["tonebot"] = (msg, verdict)
        await next()
        return None

    async def _relay(self, reply: AgentReply) -> BoltResponse:
        """An agent's reply in the support channel goes to the customer of that notice's escalation
        (stored before the ack, once per Slack event id); other threads there are the team's own."""
        assert self.desk is not None
        if (found := await escalation_of(self.bot, PLATFORM, reply.channel, [reply.thread])) is None:
            return BoltResponse(status=200, body="")
        record = found[0]
        problem = self._not_an_agent(reply.user_id) or reply.unsupported
        if not problem and not reply.text.strip():
            return BoltResponse(status=200, body="")  # only a mention of the bot
        agent = Agent(reply.user_id, await self.desk.name(reply.user_id), PLATFORM)
        text = reply.text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        message = AgentMessage(record.id, agent, text, event_id=f"{PLATFORM}:{reply.event_id}")
        try:
            await from_agent(self.bot.handoff, self.desk, reply.channel, reply.thread, message, problem, send=False)
        except Exception as exc:
            log.warning("slack: agent reply %s not stored (%s); Slack will retry it", reply.event_id, exc)
            return BoltResponse(status=503, body=json.dumps({"error": "not stored, retry later"}),
                                headers={"Retry-After": "5"})  # fmt: skip
        return BoltResponse(status=200, body="")

    async def _on_button(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """Take over / Resolve on a notice: only in the support channel (its members see the notice)."""
        await ack()
        if self.desk is None or (body.get("channel") or {}).get("id") != self.support_channel:
            return
        user = (body.get("user") or {}).get("id", "")
        if refusal := self._not_an_agent(user):
            with contextlib.suppress(SlackApiError):
                await self.app.client.chat_postEphemeral(channel=self.support_channel, user=user, text=refusal)
            return
        agent = Agent(user, await self.desk.name(user), PLATFORM)
        if str(action.get("value", "")).isdigit():  # the notice shows the new state: nothing more to say
            await act(
                self.bot.handoff, "take" if action.get("action_id") == TAKE else "resolve", int(action["value"]), agent
            )

    async def _on_feedback(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """👍 / 👎 under an answer: stored once per person, and they are told so (only they see it)."""
        await ack()
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        thread, user = str((body.get("message") or {}).get("thread_ts") or ""), (body.get("user") or {}).get("id", "")
        said = await feedback_click(
            self.bot, ConversationKey(PLATFORM, channel, thread), str(action.get("value")), user
        )
        if said:
            with contextlib.suppress(SlackApiError):
                await self.app.client.chat_postEphemeral(
                    channel=channel, user=user, text=said, thread_ts=thread or None
                )

    def _not_an_agent(self, user_id: str) -> str:
        """Why this person may not act as an agent ("" when they may): with `slack.agent_user_ids`
        set, only those people; otherwise every member of the support channel."""
        agents = self.settings.agent_user_ids
        return "only the people in slack.agent_user_ids act as agents" if agents and user_id not in agents else ""

    async def _on_event(self, context: AsyncBoltContext) -> None:
        if (stored := context.get("tonebot")) is None:
            return  # not for the bot, or a thread the bot has not joined
        msg, verdict = stored
        if verdict.stored:
            await deliver(self.channel, self.bot, msg)
        elif verdict.text:
            await self.channel.post(msg.key, verdict.text)

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        direct = command.get("channel_name") == "directmessage" or command["channel_id"].startswith("D")
        msg = IncomingMessage(
            ConversationKey(PLATFORM, command["channel_id"]), user_id=command["user_id"], text=command.get("text") or ""
        )
        text = self.admission.check(msg)
        if text is None:
            name, *args = msg.text.split() or ["help"]
            in_support = bool(self.support_channel) and msg.key.chat_id == self.support_channel
            ctx = commands.Context(
                self.bot, msg, args, prefix=f"{self.settings.command} ", in_support=in_support, whole_chat=not direct
            )
            text = await commands.run(name, ctx)
        await ack(response_type="ephemeral", text=text or "Sorry, this bot is not available here.")

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        """Bolt's error handler: the error table's line, in the thread (or DM) that failed."""
        if isinstance(error, SlackApiError):
            metrics.PLATFORM_ERRORS.labels("slack").inc()
        text = answer(error).text
        msg = to_incoming(body, self.bot_user_id) if isinstance(body, dict) and body.get("event") else None
        if msg is not None:
            try:
                await self.channel.post(msg.key, text)
            except Exception as exc:  # the platform itself may be what failed
                log.warning("slack: could not tell the user about the error: %s", exc)
