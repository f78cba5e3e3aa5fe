"""Live views that follow the database, so they work on whichever replica holds the connection:
a web-chat customer's stream of what support says (agents' messages, hand-off lines), and the
operator console's stream of escalations. Server-sent events; each polls a cursor once a second."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.adapters.web.api import Caller, field
from bot.adapters.web.operator import escalation_json
from core.bot import Bot
from core.handoff import BOT

FOLLOW_SECONDS = 1.0


def chat_events(bot: Bot) -> Route:
    async def events(request: Request) -> Response:
        """
        summary: What support says in a conversation (agents' messages, hand-off lines), live, as server-sent events
        parameters:
          - {name: conversation_id, in: query, required: true, schema: {type: string}}
          - {name: after, in: query, schema: {type: integer}, description: "a message id: send what came after it"}
        responses:
          200:
            description: "events: message ({id, role, author, text, at}), repeated"
            content: {text/event-stream: {}}
        """
        params = dict(request.query_params)
        key = Caller.of(request).conversation(field(params, "conversation_id"))
        since = params.get("after") or request.headers.get("last-event-id", "")  # an EventSource reconnecting
        after = int(since) if since.isdigit() else None
        if after is None:  # from now on
            latest = await bot.memory.messages(key, limit=1)
            after = latest[-1].id if latest else 0

        async def stream() -> AsyncIterator[dict[str, str]]:
            cursor = after
            while True:
                for turn in await bot.memory.messages_after(key, cursor, authors=(BOT[0],)):
                    cursor = turn.id
                    data = {"id": turn.id, "role": turn.role, "author": turn.author_name, "text": turn.text,
                            "at": turn.created_at.isoformat()}  # fmt: skip
                    yield {"event": "message", "id": str(turn.id), "data": json.dumps(data)}
                await asyncio.sleep(FOLLOW_SECONDS)

        return EventSourceResponse(stream())

    return Route("/v1/chat/events", events)


def escalation_events(bot: Bot) -> Route:
    async def events(request: Request) -> Response:
        """
        summary: The open and recent escalations with their transcripts, again on every change (operator token)
        security: [{operator: []}]
        responses:
          200: {description: "events: escalations ({escalations: [...]})", content: {text/event-stream: {}}}
        """

        async def stream() -> AsyncIterator[dict[str, str]]:
            seen = ""
            while True:
                cases = await bot.handoff.cases(open_only=False, limit=50)
                body: dict[str, Any] = {"escalations": [escalation_json(c.escalation, c.transcript) for c in cases]}
                data = json.dumps(body)
                if (digest := hashlib.sha256(data.encode()).hexdigest()) != seen:
                    seen = digest
                    yield {"event": "escalations", "data": data}
                await asyncio.sleep(FOLLOW_SECONDS)

        return EventSourceResponse(stream())

    return Route("/v1/escalations/events", events)
