"""The web server (Starlette), split by audience, each audience a group of routes behind its own guard:

    api       /v1/chat, /v1/chat/stream, /v1/chat/events, /v1/sentiment,        ApiGuard
              /v1/reset, /v1/forget
    operator  /v1/escalations, /v1/escalations/events,                          OperatorGuard
              /v1/escalations/{id}/messages, /v1/escalations/{id}/{action}
    probes    /healthz, /readyz, /metrics                                        open
    pages     /, /operator, /openapi.json                                        open
    platforms Telegram's webhook, Slack's events (each checks its own signature)

Errors from any route are answered from the one error table (bot/errors.py), as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from secrets import token_urlsafe
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from bot.adapters.web import api, feedback, insights, knowledge, live, operator, pages, probes
from bot.adapters.web.guards import ApiGuard, OperatorGuard, SecurityHeaders
from bot.config import Secrets, WebSettings
from bot.errors import answer
from core.bot import Bot
from core.errors import BotError


class Group(Mount):
    """Routes that share middleware (a guard), with their full paths: a Mount without a prefix that
    matches only its own routes, so groups can sit side by side under one path such as /v1."""

    def __init__(self, routes: Sequence[BaseRoute], middleware: Sequence[Middleware] = ()) -> None:
        super().__init__("", routes=routes, middleware=middleware)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if any(route.matches(scope)[0] != Match.NONE for route in self.routes):
            return super().matches(scope)
        return Match.NONE, {}


def create_app(
    bot: Bot, extra: Sequence[BaseRoute] = (), web: WebSettings | None = None, secrets: Secrets | None = None
) -> Starlette:
    """The ASGI app around a Bot; its lifecycle is the caller's."""
    web, secrets = web or WebSettings(), secrets or Secrets()
    api_guard = Middleware(ApiGuard, secrets.api_tokens, web.rate_limit, web.max_body_bytes, web.public_chat)
    session = Middleware(
        SessionMiddleware,  # type: ignore[arg-type]
        secret_key=secrets.web_session_secret or token_urlsafe(32),
        session_cookie="tonebot_session",
        same_site="strict",
        https_only=web.public_chat and web.secure_cookies,
    )
    follower = live.Follower(bot, web)
    routes: list[BaseRoute] = [
        Group(
            [
                *api.routes(bot, web.max_body_bytes),
                *feedback.routes(bot, web.max_body_bytes),
                live.chat_events(follower),
            ],
            [api_guard, session],
        ),
        Group(
            [
                live.escalation_events(follower),
                *operator.routes(bot, web.max_body_bytes),
                *knowledge.routes(bot, web.max_body_bytes),
                *insights.routes(bot),
            ],
            [Middleware(OperatorGuard, secrets.operator_token)],
        ),
        Group(probes.routes(bot)),
        Group(pages.routes(bot.limits.max_text_chars)),
        *extra,
    ]
    middleware = []
    if web.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,  # type: ignore[arg-type]
                allow_origins=list(web.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    middleware.append(Middleware(SecurityHeaders))  # type: ignore[arg-type]
    # a busy database (SQLAlchemyError: pool timeout, "database is locked") is answered here, 503, like
    # BotError; only the last (anything else) goes through starlette's 500 path, which re-raises
    handlers: Any = {HTTPException: _http_error, BotError: _error, SQLAlchemyError: _error, Exception: _error}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.live = follower  # closed on shutdown (bot/app.py), so open streams do not hold it up
    return app


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)


async def _error(_: Request, exc: Exception) -> Response:
    failure = answer(exc)
    return JSONResponse({"error": failure.error}, failure.status, headers=failure.headers)
