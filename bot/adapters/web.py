"""HTTP API and the web chat page (Starlette).

POST /v1/chat           {"conversation_id", "user_id", "text", "event_id"?} -> {"mood", "reply", "escalated", ...}
POST /v1/chat/stream    same body; server-sent events: mood, token..., done
POST /v1/sentiment      {"texts": [...]} -> {"results": [{"label", "scores"}, ...]}
POST /v1/reset          {"conversation_id"}        fresh context for that conversation
POST /v1/forget         {"user_id"}                delete that user's stored messages
GET  /v1/escalations?status=open|all              (operator token)  open escalations with transcripts
POST /v1/escalations/{id}/resolve|acknowledge     (operator token)  {"by"?}
GET  /healthz, /readyz, / (the chat page), /operator (the operator page)
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from importlib.resources import files
from typing import Any

from sqlalchemy import text as sql
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.bot import Bot
from core.errors import Busy, InvalidMessage
from core.events import ConversationKey, IncomingMessage, Mood, Reply
from core.memory import EscalationRecord, StoredMessage

log = logging.getLogger(__name__)
PLATFORM = "web"
MAX_BODY = 64 * 1024
MAX_BATCH = 64


def mood_json(mood: Mood | None) -> dict[str, Any] | None:
    return {"label": mood.label, "scores": mood.scores} if mood else None


def reply_json(reply: Reply, conversation_id: str) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "mood": mood_json(reply.mood),
        "reply": reply.text,
        "escalated": reply.escalated,
        "duplicate": reply.duplicate,
        "paused": reply.paused,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def escalation_json(record: EscalationRecord, transcript: Sequence[StoredMessage]) -> dict[str, Any]:
    key = record.key
    return {
        "id": record.id,
        "conversation": {"platform": key.platform, "chat_id": key.chat_id, "thread_id": key.thread_id},
        "reason": record.reason,
        "scores": record.scores,
        "opened_at": _iso(record.opened_at),
        "acknowledged_at": _iso(record.acknowledged_at),
        "resolved_at": _iso(record.resolved_at),
        "resolved_by": record.resolved_by,
        "transcript": [
            {"role": m.role, "author": m.author_id, "text": m.text, "mood": mood_json(m.mood), "at": _iso(m.created_at)}
            for m in transcript
        ],
    }


def _field(body: dict[str, Any], name: str, required: bool = True) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise HTTPException(422, f"'{name}' must be a non-empty string")
    return str(value)


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"request body is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "request body must be a JSON object")
    return data


def to_incoming(body: dict[str, Any]) -> IncomingMessage:
    """The web payload as the common event. Pure: raises HTTPException on a bad payload."""
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise HTTPException(422, "'text' must be a non-empty string")
    return IncomingMessage(
        key=ConversationKey(PLATFORM, _field(body, "conversation_id")),
        user_id=_field(body, "user_id", required=False) or "web-user",
        user_name=str(body.get("user_name") or ""),
        text=text,
        event_id=_field(body, "event_id", required=False) or uuid.uuid4().hex,
    )


def create_app(
    bot: Bot, extra: Sequence[BaseRoute] = (), operator_token: str = "", ready: Callable[[], bool] = lambda: True
) -> Starlette:
    """The ASGI app around a running Bot; its lifecycle is the caller's."""

    async def chat(request: Request) -> Response:
        msg = to_incoming(await _json(request))
        bot.validate(msg)
        return JSONResponse(reply_json(await bot.handle(msg), msg.key.chat_id))

    async def chat_stream(request: Request) -> Response:
        msg = to_incoming(await _json(request))
        bot.validate(msg)

        async def events() -> AsyncIterator[dict[str, str]]:
            async for item in bot.stream(msg):
                if isinstance(item, Mood):
                    yield {"event": "mood", "data": json.dumps(mood_json(item))}
                elif isinstance(item, str):
                    yield {"event": "token", "data": json.dumps(item)}
                else:
                    yield {"event": "done", "data": json.dumps(reply_json(item, msg.key.chat_id))}

        return EventSourceResponse(events())

    async def sentiment(request: Request) -> Response:
        texts = (await _json(request)).get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise HTTPException(422, "'texts' must be a non-empty list of non-empty strings")
        if len(texts) > MAX_BATCH:
            raise HTTPException(413, f"at most {MAX_BATCH} texts per request")
        if any(len(t) > bot.limits.max_text_chars for t in texts):
            raise HTTPException(413, f"each text must be at most {bot.limits.max_text_chars} characters")
        return JSONResponse({"results": [mood_json(m) for m in await bot.engine.classify(texts)]})

    async def reset(request: Request) -> Response:
        conversation_id = _field(await _json(request), "conversation_id")
        await bot.reset(ConversationKey(PLATFORM, conversation_id))
        return JSONResponse({"conversation_id": conversation_id, "reset": True})

    async def forget(request: Request) -> Response:
        user_id = _field(await _json(request), "user_id")
        return JSONResponse({"user_id": user_id, "deleted": await bot.forget(PLATFORM, user_id)})

    def operator(request: Request) -> None:
        if not operator_token:
            raise HTTPException(403, "the operator API is off: set OPERATOR_TOKEN to turn it on")
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), operator_token.encode()):
            raise HTTPException(401, "a valid operator token is required (Authorization: Bearer ...)")

    async def escalations(request: Request) -> Response:
        operator(request)
        open_only = request.query_params.get("status", "open") == "open"
        records = await bot.escalations.all(open_only=open_only)
        items = [escalation_json(r, await bot.memory.messages(r.key, limit=100)) for r in records]
        return JSONResponse({"escalations": items})

    async def escalation_action(request: Request) -> Response:
        operator(request)
        escalation_id, action = int(request.path_params["id"]), request.path_params["action"]
        if action not in ("resolve", "acknowledge"):
            raise HTTPException(404, f"unknown action {action!r}: resolve or acknowledge")
        body = await _json(request) if await request.body() else {}
        by = str(body.get("by") or "operator")
        if action == "resolve":
            record = await bot.resolve(escalation_id, by)
        else:
            record = await bot.escalations.acknowledge(escalation_id)
        if record is None:
            raise HTTPException(404, f"no escalation {escalation_id}")
        return JSONResponse(escalation_json(record, []))

    async def operator_page(_: Request) -> Response:
        return HTMLResponse(files("bot.adapters").joinpath("operator.html").read_text(encoding="utf-8"))

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            async with bot.memory.engine.connect() as connection:
                await connection.execute(sql("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"status": "database unreachable", "error": str(exc)}, 503)
        if not ready():
            return JSONResponse({"status": "model loading"}, 503)
        return JSONResponse({"status": "ready"})

    async def page(_: Request) -> Response:
        return HTMLResponse(files("bot.adapters").joinpath("chat.html").read_text(encoding="utf-8"))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, exc.status_code)

    async def invalid(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, 422)

    async def busy(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "1"})

    routes = [
        Route("/", page),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/v1/chat", chat, methods=["POST"]),
        Route("/v1/chat/stream", chat_stream, methods=["POST"]),
        Route("/v1/sentiment", sentiment, methods=["POST"]),
        Route("/v1/reset", reset, methods=["POST"]),
        Route("/v1/forget", forget, methods=["POST"]),
        Route("/v1/escalations", escalations),
        Route("/v1/escalations/{id:int}/{action:str}", escalation_action, methods=["POST"]),
        Route("/operator", operator_page),
        *extra,
    ]
    handlers = {HTTPException: http_error, InvalidMessage: invalid, Busy: busy}
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]
