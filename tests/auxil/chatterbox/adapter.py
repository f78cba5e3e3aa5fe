"""Chatterbox's adapter: its output channel, its desk (a thread per escalation, buttons), and the
webhook its events arrive at — built on the shared policy alone (admission.intake, desk.*)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.admission import Admission, intake
from bot.bodies import PLATFORM_BODY_BYTES, read_body
from bot.delivery import OutputChannel, Sent, deliver
from bot.desk import BUTTONS, ChatDesk, act, escalation_of, from_agent
from core.bot import Bot
from core.errors import ConfigError
from core.escalations import EscalationRecord
from core.events import Agent, AgentMessage, ConversationKey, IncomingMessage
from tests.auxil.chatterbox import ChatterboxSettings

PLATFORM = "chatterbox"


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, **body: Any) -> dict[str, Any]:
        response = await self.client.post(f"/api/{method}", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


class ChatterboxChannel(OutputChannel):
    """Posts in a customer's room, on the shard its events named (the conversation's stored ref)."""

    def __init__(self, api: Api, refs: Callable[[ConversationKey], Awaitable[str]]) -> None:
        self.api, self.refs = api, refs

    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        shard = await self.refs(conversation)
        sent = await self.api.call("send", room=conversation.chat_id, text=text, thread=conversation.thread_id or None,
                                   shard=shard or None)  # fmt: skip
        return Sent(conversation, sent["id"])

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        await self.api.call("edit", id=sent.id, text=text)
        return sent

    async def delete(self, sent: Sent) -> None:
        await self.api.call("delete", id=sent.id)


class ChatterboxDesk(ChatDesk):
    """The support room: a notice with buttons, its thread for everything after (through the channel)."""

    def __init__(self, api: Api, channel: OutputChannel) -> None:
        super().__init__(channel)
        self.api = api

    async def post_notice(self, target: str, escalation: EscalationRecord, text: str) -> str:
        return str((await self.api.call("send", room=target, text=text, buttons=list(escalation.actions)))["id"])

    def place(self, target: str, thread: str) -> tuple[ConversationKey, str | None]:
        return ConversationKey(PLATFORM, target, thread), None

    async def show(self, target: str, thread: str, escalation: EscalationRecord, text: str) -> None:
        await self.api.call("edit", id=thread, text=text, buttons=list(escalation.actions))

    async def delete(self, target: str, ref: str) -> None:
        for piece in ref.split(","):
            await self.api.call("delete", id=piece)


class ChatterboxAdapter:
    def __init__(self, bot: Bot, settings: ChatterboxSettings, secrets: Mapping[str, str]) -> None:
        if not (token := secrets.get("CHATTERBOX_TOKEN", "")):
            raise ConfigError("chatterbox is enabled but CHATTERBOX_TOKEN is not set")
        self.bot, self.settings, self.token = bot, settings, token
        self.http = httpx.AsyncClient(base_url=settings.api_url, headers={"authorization": f"Bearer {token}"})
        api = Api(self.http)
        self.channel = ChatterboxChannel(api, self._ref)
        self.desk = ChatterboxDesk(api, self.channel) if settings.support_room else None
        self.admission = Admission(settings.allowed_user_ids, (), settings.rate_limit_per_minute)
        self._answering: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> ChatterboxAdapter:
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*self._answering, return_exceptions=True)
        await self.http.aclose()

    async def _ref(self, key: ConversationKey) -> str:
        return await self.bot.memory.ref(key)  # what the room's events said (IncomingMessage.ref)

    def routes(self) -> list[BaseRoute]:
        return [Route(self.settings.events_path, self._events, methods=["POST"])]

    async def _events(self, request: Request) -> Response:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {self.token}".encode()):
            return JSONResponse({"error": "wrong token"}, 401)
        event = json.loads(await read_body(request, PLATFORM_BODY_BYTES))
        if self.desk is not None and event["room"] == self.settings.support_room:
            return await self._agent(event)
        self.bot.admit()  # loading or full: 503, the service redelivers (what raises below does too)
        key = ConversationKey(PLATFORM, event["room"], event.get("thread") or "")
        msg = IncomingMessage(key, event["user"], event["text"], event_id=f"{PLATFORM}:{event['id']}",
                              message_id=event["id"], user_name=event.get("name", ""),
                              ref=event.get("shard", ""))  # fmt: skip
        verdict = await intake(self.bot, self.admission, msg)  # stored before the 200
        if verdict.stored:
            task = asyncio.create_task(deliver(self.channel, self.bot, msg))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        elif verdict.text:
            await self.channel.post(key, verdict.text)
        return JSONResponse({"ok": True})

    async def _agent(self, event: dict[str, Any]) -> Response:
        """In the support room: a button on a notice, or an agent's message in an escalation's thread."""
        assert self.desk is not None
        agent = Agent(event["user"], event.get("name", event["user"]), PLATFORM)
        if event.get("action") in BUTTONS:
            return JSONResponse({"text": await act(self.bot.handoff, event["action"], event["escalation"], agent)})
        room = self.settings.support_room
        if (found := await escalation_of(self.bot, PLATFORM, room, [event.get("thread") or ""])) is None:
            return JSONResponse({"ok": True})  # the team's own chatter
        record, thread = found
        message = AgentMessage(record.id, agent, event["text"], event_id=f"{PLATFORM}:{event['id']}")
        await from_agent(self.bot.handoff, self.desk, room, thread, message)  # stored before the 200
        return JSONResponse({"ok": True})
