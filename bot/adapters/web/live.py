"""Live views that follow the database, so they work on whichever replica holds the connection: a
web-chat customer's stream of what support says (agents' messages, hand-off lines), and the operator
console's stream of escalations. Server-sent events.

One `Follower` per process reads the database once a second, whatever the number of streams (two
cheap reads that take no write lock), and fans what changed out to the streams in memory. Streams
are capped (in all, per address, per web-chat session), end after `web.stream_minutes` (a page
reconnects with `Last-Event-ID` and misses nothing), and end at once on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.adapters.web.api import PLATFORM, Caller, field
from bot.adapters.web.guards import client_of
from bot.adapters.web.operator import escalation_json
from bot.config import WebSettings
from core.bot import Bot
from core.events import ConversationKey
from core.handoff import BOT
from core.memory import StoredMessage

FOLLOW_SECONDS = 1.0
OPERATORS = ConversationKey("", "operators")  # the key the operator streams wait on


class Follower:
    """The process's one reader of what live views show, and the streams it feeds."""

    def __init__(self, bot: Bot, web: WebSettings) -> None:
        self.bot, self.web = bot, web
        self.streams: dict[ConversationKey, set[asyncio.Queue[Any]]] = {}
        self.owners: Counter[str] = Counter()
        self.closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cursor: int | None = None
        self._fingerprint: tuple[object, ...] | None = None

    def close(self) -> None:
        """Shutdown: every stream ends now (a page reconnects to another replica)."""
        self.closing.set()

    def admit(self, owners: list[str]) -> None:
        """Before the response starts: 429 past a cap, 503 when shutting down."""
        if self.closing.is_set():
            raise HTTPException(503, "shutting down")
        if sum(map(len, self.streams.values())) >= self.web.max_streams:
            raise HTTPException(429, "too many live streams on this server", {"Retry-After": "30"})
        if any(self.owners[owner] >= self.web.streams_per_client for owner in owners):
            raise HTTPException(429, f"at most {self.web.streams_per_client} live streams each", {"Retry-After": "30"})

    @contextlib.contextmanager
    def subscribe(self, key: ConversationKey, owners: list[str]) -> Iterator[asyncio.Queue[Any]]:
        """A queue that gets what changes for `key`, for as long as the stream runs."""
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        self.streams.setdefault(key, set()).add(queue)
        self.owners.update(owners)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow())
        try:
            yield queue
        finally:
            self.streams[key].discard(queue)
            if not self.streams[key]:
                del self.streams[key]
            self.owners.subtract(owners)
            self.owners = +self.owners  # drop the zeros

    async def items(self, queue: asyncio.Queue[Any]) -> AsyncIterator[Any]:
        """What arrives on the queue until the stream's lifetime is over or the server closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60 * self.web.stream_minutes
        while not self.closing.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                yield await asyncio.wait_for(queue.get(), timeout=min(1.0, max(0.01, deadline - loop.time())))

    async def _follow(self) -> None:
        while self.streams and not self.closing.is_set():
            with contextlib.suppress(Exception):  # a database hiccup: the next round reads again
                await self._round()
            await asyncio.sleep(FOLLOW_SECONDS)

    async def _round(self) -> None:
        if self._cursor is None:
            self._cursor = await self.bot.memory.latest_message_id()
        for turn in await self.bot.memory.support_turns(self._cursor, PLATFORM, authors=(BOT[0],)):
            self._cursor = turn.id
            self._send(turn.key, turn)
        if OPERATORS not in self.streams:
            return
        now = (*await self.bot.escalations.fingerprint(), await self.bot.memory.latest_message_id())  # a new turn too
        if now != self._fingerprint:
            self._fingerprint = now
            self._send(OPERATORS, await escalations_event(self.bot))

    def _send(self, key: ConversationKey | None, item: Any) -> None:
        for queue in self.streams.get(key, set()) if key else ():
            with contextlib.suppress(asyncio.QueueFull):  # a stalled client: it resumes from its last id
                queue.put_nowait(item)


def message_event(turn: StoredMessage) -> dict[str, str]:
    data = {"id": turn.id, "role": turn.role, "author": turn.author_name, "text": turn.text,
            "at": turn.created_at.isoformat()}  # fmt: skip
    return {"event": "message", "id": str(turn.id), "data": json.dumps(data)}


async def escalations_event(bot: Bot) -> dict[str, str]:
    cases = await bot.handoff.cases(open_only=False, limit=50)
    body = {"escalations": [escalation_json(c.escalation, c.transcript, c.notes, bot.policy) for c in cases]}
    return {"event": "escalations", "data": json.dumps(body)}


def chat_events(follower: Follower) -> Route:
    async def events(request: Request) -> Response:
        """
        summary: What support says in a conversation (agents' messages, hand-off lines), live, as server-sent events
        parameters:
          - {name: conversation_id, in: query, required: true, schema: {type: string}}
          - {name: after, in: query, schema: {type: integer}, description: "a message id: send what came after it"}
        responses:
          200:
            description: "events: message ({id, role, author, text, at}), repeated; the stream ends after
              web.stream_minutes (reconnect with Last-Event-ID)"
            content: {text/event-stream: {}}
          429: {description: too many live streams}
        """
        params, caller = dict(request.query_params), Caller.of(request)
        key = caller.conversation(field(params, "conversation_id"))
        since = params.get("after") or request.headers.get("last-event-id", "")  # an EventSource reconnecting
        after = int(since) if since.isascii() and since.isdecimal() and len(since) <= 18 else None
        if after is None:  # from now on
            after = await follower.bot.memory.latest_message_id()
        owners = [f"ip:{client_of(request)}", f"caller:{caller.namespace}"]
        follower.admit(owners)

        async def stream() -> AsyncIterator[dict[str, str]]:
            with follower.subscribe(key, owners) as queue:  # before the catch-up: nothing falls between
                last = after
                for turn in await follower.bot.memory.support_turns(after, PLATFORM, key, authors=(BOT[0],)):
                    last = turn.id
                    yield message_event(turn)
                async for turn in follower.items(queue):
                    if turn.id > last:
                        last = turn.id
                        yield message_event(turn)

        return EventSourceResponse(stream())

    return Route("/v1/chat/events", events)


def escalation_events(follower: Follower) -> Route:
    async def events(request: Request) -> Response:
        """
        summary: The open and recent escalations with their transcripts, again on every change (operator token)
        security: [{operator: []}]
        responses:
          200: {description: "events: escalations ({escalations: [...]})", content: {text/event-stream: {}}}
          429: {description: too many live streams}
        """
        owners = [f"ip:{client_of(request)}"]
        follower.admit(owners)

        async def stream() -> AsyncIterator[dict[str, str]]:
            with follower.subscribe(OPERATORS, owners) as queue:
                yield await escalations_event(follower.bot)
                async for event in follower.items(queue):
                    yield event

        return EventSourceResponse(stream())

    return Route("/v1/escalations/events", events)
