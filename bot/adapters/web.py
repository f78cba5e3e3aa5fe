"""HTTP API and the web chat page (Starlette).

POST /v1/chat           {"conversation_id", "user_id", "text", "event_id"?} -> {"mood", "reply", "escalated", ...}
POST /v1/chat/stream    same body; server-sent events: mood, token..., done
POST /v1/sentiment      {"texts": [...]} -> {"results": [{"label", "scores"}, ...]}
POST /v1/reset          {"conversation_id"}        fresh context for that conversation
POST /v1/forget         {"user_id"}                delete that user's stored messages
GET  /v1/escalations?status=open|all              (operator token)  open escalations with transcripts
POST /v1/escalations/{id}/resolve|acknowledge     (operator token)  {"by"?}
GET  /healthz, /readyz, /metrics (Prometheus), /openapi.json, / (the chat page), /operator (the operator page)

/v1/* (but the operator routes) takes `Authorization: Bearer <token>` when API_TOKENS is set, is
rate-limited per token and per client IP (429 + Retry-After), and refuses bodies over
`web.max_body_bytes` (413). CORS is off unless `web.cors_origins` lists origins.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from importlib.resources import files
from typing import Any

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text as sql
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.config import Secrets, WebSettings
from core import metrics
from core.bot import Bot
from core.errors import Busy, InvalidMessage
from core.events import ConversationKey, IncomingMessage, Mood, Reply
from core.memory import EscalationRecord, StoredMessage

log = logging.getLogger(__name__)
PLATFORM = "web"
MAX_BATCH = 64
SCHEMAS: dict[str, Any] = {
    "Message": {
        "type": "object",
        "required": ["conversation_id", "text"],
        "properties": {
            "conversation_id": {"type": "string"},
            "user_id": {"type": "string"},
            "user_name": {"type": "string"},
            "text": {"type": "string", "maxLength": 4000},
            "event_id": {"type": "string", "description": "idempotency key: a redelivery gets the stored reply"},
        },
    },
    "Mood": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["negative", "neutral", "positive"]},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    },
    "Reply": {
        "type": "object",
        "properties": {
            "conversation_id": {"type": "string"},
            "mood": {"$ref": "#/components/schemas/Mood"},
            "reply": {"type": "string"},
            "escalated": {"type": "boolean"},
            "duplicate": {"type": "boolean"},
            "paused": {"type": "boolean"},
        },
    },
}
OPENAPI = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "tonebot HTTP API", "version": "1"},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
            "requestBodies": {
                "Message": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                }
            },
            "responses": {
                "Unauthorized": {"description": "a valid API token is required"},
                "RateLimited": {"description": "rate limited (see Retry-After)"},
            },
        },
    }
)  # the endpoints' docstrings (YAML) add the paths


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
    limit = request.app.state.max_body_bytes
    body = b""
    async for chunk in request.stream():  # counted as it arrives: a chunked body cannot sneak past
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body is larger than {limit} bytes")
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


def bearer(request: Request) -> bytes:
    """The token of an `Authorization: Bearer <token>` header (empty when there is none)."""
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip().encode()


class ApiGuard:
    """ASGI middleware for /v1/* (operator routes excepted, they have their own token): readiness,
    bearer tokens, per-token and per-IP rate limits, and the declared body size."""

    def __init__(
        self, app: ASGIApp, tokens: Sequence[str], rate_limit: str, max_body: int, ready: Callable[[], bool]
    ) -> None:
        self.app, self.tokens, self.max_body, self.ready = app, [t.encode() for t in tokens], max_body, ready
        self.rate = parse(rate_limit) if rate_limit else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or path.startswith("/v1/escalations"):
            return await self.app(scope, receive, send)
        request = Request(scope)
        refusal = await self._refusal(request)
        if refusal is not None:
            metrics.HTTP_REFUSED.labels(str(refusal.status_code)).inc()
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    async def _refusal(self, request: Request) -> Response | None:
        token = bearer(request)
        if self.tokens and not any(hmac.compare_digest(token, t) for t in self.tokens):
            return JSONResponse(
                {"error": "a valid API token is required (Authorization: Bearer ...)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if int(request.headers.get("content-length") or 0) > self.max_body:
            return JSONResponse({"error": f"request body is larger than {self.max_body} bytes"}, 413)
        if self.rate is not None:
            client = request.client.host if request.client else "unknown"
            keys = [f"ip:{client}"] + ([f"token:{hashlib.sha256(token).hexdigest()[:16]}"] if token else [])
            for key in keys:
                if not await self.limiter.hit(self.rate, key):
                    stats = await self.limiter.get_window_stats(self.rate, key)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    return JSONResponse(
                        {"error": f"rate limit {self.rate} exceeded, retry in {wait} s"},
                        429,
                        headers={"Retry-After": str(wait)},
                    )
        if not self.ready():
            return JSONResponse({"error": "the model is still loading"}, 503, headers={"Retry-After": "5"})
        return None


def create_app(
    bot: Bot,
    extra: Sequence[BaseRoute] = (),
    web: WebSettings | None = None,
    secrets: Secrets | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> Starlette:
    """The ASGI app around a Bot; its lifecycle is the caller's."""
    web, secrets = web or WebSettings(), secrets or Secrets()
    operator_token = secrets.operator_token

    async def chat(request: Request) -> Response:
        """
        summary: Send one message and get the mood and the whole reply
        requestBody: {$ref: "#/components/requestBodies/Message"}
        responses:
          200: {description: "the reply", content: {application/json: {schema: {$ref: "#/components/schemas/Reply"}}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          413: {description: body or text too long}
          422: {description: invalid message}
          429: {$ref: "#/components/responses/RateLimited"}
          503: {description: the model is loading or busy (see Retry-After)}
        """
        msg = to_incoming(await _json(request))
        bot.validate(msg)
        return JSONResponse(reply_json(await bot.handle(msg), msg.key.chat_id))

    async def chat_stream(request: Request) -> Response:
        """
        summary: Send one message; the mood, reply tokens and the final reply arrive as server-sent events
        requestBody: {$ref: "#/components/requestBodies/Message"}
        responses:
          200: {description: "events: mood, token (repeated), done", content: {text/event-stream: {}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          429: {$ref: "#/components/responses/RateLimited"}
        """
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
        """
        summary: Classify the mood of up to 64 texts
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                required: [texts]
                properties: {texts: {type: array, items: {type: string}, minItems: 1, maxItems: 64}}
        responses:
          200:
            description: one result per text, in order
            content:
              application/json:
                schema:
                  type: object
                  properties: {results: {type: array, items: {$ref: "#/components/schemas/Mood"}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          422: {description: texts missing or empty}
        """
        texts = (await _json(request)).get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise HTTPException(422, "'texts' must be a non-empty list of non-empty strings")
        if len(texts) > MAX_BATCH:
            raise HTTPException(413, f"at most {MAX_BATCH} texts per request")
        if any(len(t) > bot.limits.max_text_chars for t in texts):
            raise HTTPException(413, f"each text must be at most {bot.limits.max_text_chars} characters")
        return JSONResponse({"results": [mood_json(m) for m in await bot.engine.classify(texts)]})

    async def reset(request: Request) -> Response:
        """
        summary: Start a fresh context for a conversation (stored messages are kept)
        requestBody:
          required: true
          content:
            application/json:
              schema: {type: object, required: [conversation_id], properties: {conversation_id: {type: string}}}
        responses:
          200: {description: reset}
        """
        conversation_id = _field(await _json(request), "conversation_id")
        await bot.reset(ConversationKey(PLATFORM, conversation_id))
        return JSONResponse({"conversation_id": conversation_id, "reset": True})

    async def forget(request: Request) -> Response:
        """
        summary: Delete everything stored from one web user
        requestBody:
          required: true
          content:
            application/json:
              schema: {type: object, required: [user_id], properties: {user_id: {type: string}}}
        responses:
          200: {description: "how many messages were deleted"}
        """
        user_id = _field(await _json(request), "user_id")
        return JSONResponse({"user_id": user_id, "deleted": await bot.forget(PLATFORM, user_id)})

    def operator(request: Request) -> None:
        if not operator_token:
            raise HTTPException(403, "the operator API is off: set OPERATOR_TOKEN to turn it on")
        if not hmac.compare_digest(bearer(request), operator_token.encode()):
            raise HTTPException(401, "a valid operator token is required (Authorization: Bearer ...)")

    async def escalations(request: Request) -> Response:
        """
        summary: Escalations with their transcripts (operator token)
        parameters:
          - {name: status, in: query, schema: {type: string, enum: [open, all], default: open}}
        responses:
          200: {description: escalations}
          401: {description: a valid operator token is required}
          403: {description: the operator API is off (OPERATOR_TOKEN unset)}
        """
        operator(request)
        open_only = request.query_params.get("status", "open") == "open"
        records = await bot.escalations.all(open_only=open_only)
        items = [escalation_json(r, await bot.memory.messages(r.key, limit=100)) for r in records]
        return JSONResponse({"escalations": items})

    async def escalation_action(request: Request) -> Response:
        """
        summary: Acknowledge or resolve an escalation (operator token); resolving hands the chat back to the bot
        parameters:
          - {name: id, in: path, required: true, schema: {type: integer}}
          - {name: action, in: path, required: true, schema: {type: string, enum: [acknowledge, resolve]}}
        responses:
          200: {description: the escalation after the change}
          404: {description: no such escalation}
        """
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
        """
        summary: Liveness (the process answers)
        security: []
        responses:
          200: {description: ok}
        """
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        """
        summary: Readiness (the model is loaded and the database answers)
        security: []
        responses:
          200: {description: ready}
          503: {description: model loading or database unreachable}
        """
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

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI.get_schema(routes))

    routes: list[BaseRoute] = [
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
        Route("/openapi.json", openapi, include_in_schema=False),
        Route("/metrics", prometheus, include_in_schema=False),
        *extra,
    ]
    handlers = {HTTPException: http_error, InvalidMessage: invalid, Busy: busy}
    middleware = [Middleware(ApiGuard, secrets.api_tokens, web.rate_limit, web.max_body_bytes, ready)]  # type: ignore[arg-type]
    if web.cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(web.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            ),
        )  # type: ignore[arg-type]
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)  # type: ignore[arg-type]
    app.state.max_body_bytes = web.max_body_bytes
    return app
