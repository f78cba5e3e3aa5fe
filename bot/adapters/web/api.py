"""The public HTTP API: chat (whole or streamed as server-sent events), batch sentiment, and a
user's own data (reset, forget). Mounted behind ApiGuard. JSON in, JSON out; the endpoints'
docstrings (YAML) are their OpenAPI operations."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.web.guards import VISITOR, bearer
from bot.bodies import read_body
from bot.errors import answer
from core.bot import Bot, Event
from core.errors import check_text
from core.events import ConversationKey, IncomingMessage, Mood, Reply

PLATFORM = "web"
MAX_BATCH = 64
MAX_ID = 64  # characters of a conversation, user or event id
MAX_NAME = 128  # characters of a display name (longer ones are cut)


def mood_json(mood: Mood | None) -> dict[str, Any] | None:
    return {"label": mood.label, "scores": mood.scores} if mood else None


def reply_json(reply: Reply, conversation_id: str) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "mood": mood_json(reply.mood),
        "reply": reply.text,
        "escalated": reply.escalated,
        "offered": reply.offered,  # a person offered, for this reason ("" if not): a yes escalates
        "duplicate": reply.duplicate,
        "paused": reply.paused,
        "failed": reply.failed,
        "grounded": reply.grounded,
        "sources": [{"id": s.id, "title": s.title, "url": s.url} for s in reply.sources],
        "answer_id": reply.answer_id,
    }


def field(body: dict[str, Any], name: str, required: bool = True) -> str:
    """An id from the body: a non-empty string (or number) of at most MAX_ID characters."""
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise HTTPException(422, f"'{name}' must be a non-empty string")
    if len(str(value)) > MAX_ID:
        raise HTTPException(422, f"'{name}' is longer than {MAX_ID} characters")
    return check_text(str(value), f"'{name}'")


@dataclass(frozen=True)
class Caller:
    """Who is calling, and so where its ids live. An API-token holder names its own users and
    conversations inside the token's namespace; a web-chat caller is one user, bound to a session
    the server issued (a signed cookie), and every id it sends lives inside that session. So no
    caller can reach, reset or forget another's conversations, whatever ids it sends."""

    namespace: str
    names_users: bool
    origin: str = ""  # a public-chat visitor's address: their escalations are limited (core/escalation.py)

    @classmethod
    def of(cls, request: Request) -> Caller:
        if token := bearer(request):  # checked by ApiGuard when API_TOKENS is set
            return cls("t." + hashlib.sha256(token).hexdigest()[:16], names_users=True)
        session = request.session  # Starlette's SessionMiddleware: signed, SameSite=strict
        session.setdefault("id", uuid.uuid4().hex)
        origin = (request.client.host if request.client else "unknown") if request.scope.get(VISITOR) else ""
        return cls("s." + session["id"], names_users=False, origin=origin)

    def conversation(self, conversation_id: str) -> ConversationKey:
        return ConversationKey(PLATFORM, f"{self.namespace}/{conversation_id}")

    def user(self, user_id: str) -> str:
        return f"{self.namespace}/{user_id or 'web-user'}" if self.names_users else self.namespace


async def read_json(request: Request, limit: int, empty_ok: bool = False) -> dict[str, Any]:
    body = await read_body(request, limit)
    if empty_ok and not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
        raise HTTPException(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "request body must be a JSON object")
    return data


def to_incoming(body: dict[str, Any], caller: Caller) -> IncomingMessage:
    """The web payload as the common event, inside the caller's namespace. Pure: raises
    HTTPException on a bad payload."""
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise HTTPException(422, "'text' must be a non-empty string")
    return IncomingMessage(
        key=caller.conversation(field(body, "conversation_id")),
        user_id=caller.user(field(body, "user_id", required=False)),
        user_name=str(body.get("user_name") or "")[:MAX_NAME],
        text=text,
        event_id=field(body, "event_id", required=False) or uuid.uuid4().hex,
        origin=caller.origin,
    )


def sse(item: Event, conversation_id: str) -> dict[str, str]:
    if isinstance(item, Mood):
        return {"event": "mood", "data": json.dumps(mood_json(item))}
    if isinstance(item, str):
        return {"event": "token", "data": json.dumps(item)}
    return {"event": "done", "data": json.dumps(reply_json(item, conversation_id))}


def routes(bot: Bot, max_body: int) -> list[BaseRoute]:
    async def incoming(request: Request) -> tuple[IncomingMessage, str]:
        """The message, and the conversation id as the caller knows it."""
        body = await read_json(request, max_body)
        msg = to_incoming(body, Caller.of(request))
        bot.validate(msg.text)  # an API caller gets a too long text back as a 422, nothing stored
        return msg, str(body["conversation_id"])

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
          500: {description: "the model failed; `reply` is the apology and `failed` is true"}
          503: {$ref: "#/components/responses/Unavailable"}
        """
        msg, conversation_id = await incoming(request)
        reply = await bot.handle(msg)
        return JSONResponse(reply_json(reply, conversation_id), 500 if reply.failed else 200)

    async def chat_stream(request: Request) -> Response:
        """
        summary: Send one message; the mood, reply tokens and the final reply arrive as server-sent events
        requestBody: {$ref: "#/components/requestBodies/Message"}
        responses:
          200: {description: "events: mood, token (repeated), done; or error", content: {text/event-stream: {}}}
          401: {$ref: "#/components/responses/Unauthorized"}
          422: {description: invalid message}
          429: {$ref: "#/components/responses/RateLimited"}
          503: {$ref: "#/components/responses/Unavailable"}
        """
        msg, conversation_id = await incoming(request)
        events = bot.stream(msg)
        first = await anext(events)  # refusals (busy, invalid) become a status code before the stream starts

        async def stream() -> AsyncIterator[dict[str, str]]:
            async with contextlib.aclosing(events):
                yield sse(first, conversation_id)
                try:
                    async for item in events:
                        yield sse(item, conversation_id)
                except Exception as exc:  # after the 200: the error table's answer as the last event
                    failure = answer(exc)
                    yield {"event": "error", "data": json.dumps({"error": failure.error, "status": failure.status})}

        return EventSourceResponse(stream())

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
          413: {description: too many texts}
          422: {description: "texts missing, empty or too long"}
          503: {$ref: "#/components/responses/Unavailable"}
        """
        texts = (await read_json(request, max_body)).get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise HTTPException(422, "'texts' must be a non-empty list of non-empty strings")
        if len(texts) > MAX_BATCH:
            raise HTTPException(413, f"at most {MAX_BATCH} texts per request")
        return JSONResponse({"results": [mood_json(m) for m in await bot.classify(texts)]})

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
        conversation_id = field(await read_json(request, max_body), "conversation_id")
        await bot.reset(Caller.of(request).conversation(conversation_id))
        return JSONResponse({"conversation_id": conversation_id, "reset": True})

    async def forget(request: Request) -> Response:
        """
        summary: "Delete everything stored from one user: a web-chat caller itself, or the `user_id` of a token holder"
        requestBody:
          required: true
          content:
            application/json:
              schema: {type: object, properties: {user_id: {type: string}}}
        responses:
          200: {description: "how many messages were deleted"}
        """
        caller = Caller.of(request)
        user_id = field(await read_json(request, max_body), "user_id", required=caller.names_users)
        return JSONResponse({"user_id": user_id, "deleted": await bot.forget(PLATFORM, caller.user(user_id))})

    return [
        Route("/v1/chat", chat, methods=["POST"]),
        Route("/v1/chat/stream", chat_stream, methods=["POST"]),
        Route("/v1/sentiment", sentiment, methods=["POST"]),
        Route("/v1/reset", reset, methods=["POST"]),
        Route("/v1/forget", forget, methods=["POST"]),
    ]
