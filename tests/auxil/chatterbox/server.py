"""A fake Chatterbox server: its send / edit / delete API (bearer token), and `push`, which delivers
an event to the bot's webhook as the service would (and says what the webhook answered).

A customer's room lives on a shard: its events say which, and a send to it must name that shard
(as Teams' serviceUrl or WhatsApp's phone number id: a chat id alone cannot reach it)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeChatterbox:
    token: str
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {room, text, thread, buttons}
    deleted: list[str] = field(default_factory=list)
    webhook: str = ""  # where events go (the bot's events route)
    shards: dict[str, str] = field(default_factory=dict)  # customer room -> its shard
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{method}", self.handle, methods=["POST"])])

    def in_room(self, room: str, thread: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["room"] == room and (thread is None or m["thread"] == thread)]

    async def handle(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorized"}, 401)
        method, body = request.path_params["method"], await request.json()
        if method == "send" and self.shards.get(body["room"], "") != (body.get("shard") or ""):
            return JSONResponse({"error": f"room {body['room']} is not on shard {body.get('shard')!r}"}, 400)
        if method == "send":
            mid = f"m{next(self._ids)}"
            self.messages[mid] = {"id": mid, "room": body["room"], "text": body["text"],
                                  "thread": body.get("thread"), "buttons": body.get("buttons", [])}  # fmt: skip
            return JSONResponse({"id": mid})
        if body.get("id") not in self.messages:
            return JSONResponse({"error": "no such message"}, 404)
        if method == "edit":
            self.messages[body["id"]].update(text=body["text"], buttons=body.get("buttons", []))
        elif method == "delete":
            self.deleted.append(body["id"])
            del self.messages[body["id"]]
        return JSONResponse({"ok": True})

    async def push(self, client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
        """Deliver one event (a redelivery is the same event again)."""
        return await client.post(self.webhook, json=event, headers={"authorization": f"Bearer {self.token}"})
