"""A fake Slack Web API: auth.test, chat.postMessage / update / delete / postEphemeral, users.info, with
call recording and 429s."""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeSlackAPI:
    bot_user_id: str = "U0BOT00001"
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # ts -> message, as updated
    sent_at: dict[str, float] = field(default_factory=dict)  # ts -> time.monotonic() of its post
    throttle: dict[str, int] = field(default_factory=dict)  # method -> how many 429s to answer next
    names: dict[str, str] = field(default_factory=dict)  # user id -> display name (users.info)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/{method}", self.handle, methods=["POST", "GET"])])

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def in_thread(self, channel: str, thread_ts: str | None) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["channel"] == channel and m.get("thread_ts") == thread_ts]

    async def handle(self, request: Request) -> JSONResponse:
        method, raw = request.path_params["method"], (await request.body()).decode()
        if request.headers.get("content-type", "").startswith("application/json"):
            params = json.loads(raw or "{}")
        else:
            params = dict(urllib.parse.parse_qsl(raw))
        params = {**request.query_params, **params}  # GET methods (users.info) send theirs in the query
        self.calls.append((method, params))
        if self.throttle.get(method):
            self.throttle[method] -= 1
            return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429, headers={"Retry-After": "1"})
        if method == "auth.test":
            identity = {"team_id": "T0TEAM0001", "user_id": self.bot_user_id, "bot_id": "B0TONEBOT1", "user": "tonebot"}
            return JSONResponse({"ok": True, "url": "https://t.slack.test/", "team": "Test", **identity})
        if method == "chat.postMessage":
            ts = f"1800000000.{next(self._ts):06d}"
            message = {"channel": params["channel"], "ts": ts, "text": params["text"], "updates": 0,
                       "blocks": _blocks(params.get("blocks"))}  # fmt: skip
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            self.messages[ts] = message
            self.sent_at[ts] = time.monotonic()
            return JSONResponse({"ok": True, "channel": params["channel"], "ts": ts, "message": message})
        if method == "chat.update":
            message = self.messages[params["ts"]]
            message["text"], message["updates"] = params["text"], message["updates"] + 1
            message["blocks"] = _blocks(params.get("blocks"))
            return JSONResponse({"ok": True, "channel": params["channel"], "ts": params["ts"], "text": params["text"]})
        if method == "chat.delete":
            self.messages.pop(params["ts"], None)
            return JSONResponse({"ok": True, "channel": params["channel"], "ts": params["ts"]})
        if method == "users.info":
            user = params["user"]
            name = self.names.get(user, "")
            return JSONResponse(
                {"ok": True, "user": {"id": user, "real_name": name, "profile": {"display_name": name}}}
            )
        if method == "chat.postEphemeral":  # seen by one person only: recorded in calls, not in messages
            return JSONResponse({"ok": True, "message_ts": f"1800000000.{next(self._ts):06d}"})
        return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)


def _blocks(value: Any) -> list[Any]:
    """Blocks as sent: a JSON body carries a list, a form body a JSON string."""
    return json.loads(value) if isinstance(value, str) else list(value or [])
