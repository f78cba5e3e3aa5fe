"""A fake Telegram Bot API server: enough of it for python-telegram-bot to poll, send and edit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STRING_FIELDS = {"text", "secret_token", "url"}


@dataclass
class FakeBotAPI:
    me: dict[str, Any]
    updates: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)  # what the bot sent, as edited
    sent_at: dict[int, float] = field(default_factory=dict)  # message id -> time.monotonic() of its send
    throttle: dict[str, int] = field(default_factory=dict)  # method -> how many 429s to answer next
    forums: set[int] = field(default_factory=set)  # chats that have forum topics
    topics: dict[int, str] = field(default_factory=dict)  # message_thread_id -> name
    deleted: list[tuple[int, int]] = field(default_factory=list)  # (chat, message id)
    blocked: set[int] = field(default_factory=set)  # users who blocked the bot: sends to them fail (403)
    admins: set[int] = field(default_factory=lambda: {222})  # the support group's administrators (Sam)
    _next_id: int = 9000
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self.handle, methods=["GET", "POST"])])

    def push(self, *updates: dict[str, Any]) -> None:
        self.updates.extend(updates)
        self._arrived.set()

    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["chat"]["id"] == chat_id]

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    async def handle(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        form = urllib.parse.parse_qsl((await request.body()).decode())  # PTB posts form-encoded JSON values
        params = {k: v if k in STRING_FIELDS else _json(v) for k, v in form}
        self.calls.append((method, params))
        if self.throttle.get(method):
            self.throttle[method] -= 1
            return JSONResponse(
                {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                 "parameters": {"retry_after": 1}}, status_code=429,
            )  # fmt: skip
        if method == "sendMessage" and int(params.get("chat_id", 0)) in self.blocked:
            blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            return JSONResponse(blocked, status_code=403)
        handler = getattr(self, method, None)
        result = await handler(params) if handler else True
        return JSONResponse({"ok": True, "result": result})

    async def getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(params["chat_id"])
        kind = "private" if chat_id > 0 else "supergroup"
        return {"id": chat_id, "type": kind, "is_forum": chat_id in self.forums, "title": "Support",
                "accent_color_id": 0, "max_reaction_count": 11}  # fmt: skip

    async def createForumTopic(self, params: dict[str, Any]) -> dict[str, Any]:
        thread = 500 + len(self.topics)
        self.topics[thread] = params["name"]
        return {"message_thread_id": thread, "name": params["name"], "icon_color": 7322096}

    async def getChatAdministrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"status": "administrator", "user": {"id": uid, "is_bot": False, "first_name": f"Admin {uid}"},
                 "can_be_edited": False, "is_anonymous": False, "can_manage_chat": True, "can_delete_messages": True,
                 "can_manage_video_chats": True, "can_restrict_members": True, "can_promote_members": False,
                 "can_change_info": True, "can_invite_users": True, "can_post_stories": False,
                 "can_edit_stories": False, "can_delete_stories": False} for uid in sorted(self.admins)]  # fmt: skip

    async def deleteForumTopic(self, params: dict[str, Any]) -> bool:
        """The topic goes with every message in it."""
        thread = int(params["message_thread_id"])
        self.topics.pop(thread, None)
        for message_id, message in list(self.messages.items()):
            if message.get("message_thread_id") == thread:
                self.deleted.append((int(params["chat_id"]), message_id))
                del self.messages[message_id]
        return True

    async def deleteMessage(self, params: dict[str, Any]) -> bool:
        self.deleted.append((int(params["chat_id"]), int(params["message_id"])))
        self.messages.pop(int(params["message_id"]), None)
        return True

    async def getMe(self, _: dict[str, Any]) -> dict[str, Any]:
        return self.me

    async def getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset, timeout = int(params.get("offset") or 0), float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while True:
            ready = [u for u in self.updates if u["update_id"] >= offset]
            if ready or time.monotonic() >= deadline:
                return ready
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max(0.01, deadline - time.monotonic()))

    async def sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        chat_id = int(params["chat_id"])
        message = {
            "message_id": self._next_id,
            "from": self.me,
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "date": int(time.time()),
            "text": params["text"],
        }
        if "reply_parameters" in params:
            message["reply_to"] = params["reply_parameters"].get("message_id")
        if params.get("message_thread_id"):
            message["message_thread_id"] = params["message_thread_id"]
            message["is_topic_message"] = True
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        self.messages[self._next_id] = message
        self.sent_at[self._next_id] = time.monotonic()
        return message

    async def editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages[int(params["message_id"])]
        message["text"] = params["text"]
        message["edits"] = message.get("edits", 0) + 1
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        else:
            message.pop("reply_markup", None)
        return message

    async def editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages[int(params["message_id"])]
        message["reply_markup"] = params.get("reply_markup")
        return message


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value
