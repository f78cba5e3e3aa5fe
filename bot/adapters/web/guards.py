"""Guards, one per audience, as ASGI middleware on that audience's routes (bot/adapters/web/__init__.py)."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Sequence

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics


def bearer(request: Request) -> bytes:
    """The token of an `Authorization: Bearer <token>` header (empty when there is none, or when the
    header is a bare token or another scheme: RFC 6750 wants the scheme, case-insensitively)."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""


class SecurityHeaders:
    """On every response: no MIME sniffing, no framing by other sites, no referrer leaks."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Guard:
    """Pure ASGI middleware: `refusal` returns a response to send instead, or None to go on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (refusal := await self.refusal(Request(scope))) is not None:
            metrics.HTTP_REFUSED.labels(str(refusal.status_code)).inc()
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    async def refusal(self, request: Request) -> Response | None:
        raise NotImplementedError


FAILED_TOKENS = parse("10/minute")  # wrong tokens one address may try before it waits
CHAT_ROUTES = ("/v1/chat", "/v1/chat/stream", "/v1/chat/events", "/v1/reset", "/v1/forget")
"""What a web-chat visitor (a cookie session, no token) may use in public-chat mode: their own chat."""
VISITOR = "tonebot.public_visitor"  # set in the request's scope for such a visitor


class FailedTokens:
    """Wrong tokens, counted per client address: past the limit the address waits, but a request that
    presents a valid token is never refused for it (behind a proxy, many clients share an address)."""

    def __init__(self, limiter: MovingWindowRateLimiter) -> None:
        self.limiter = limiter

    async def refusal(self, client: str, valid: bool, what: str) -> Response | None:
        if valid:
            return None
        if not await self.limiter.test(FAILED_TOKENS, f"failed:{client}"):
            return JSONResponse(
                {"error": f"too many wrong {what} tokens from this address ({FAILED_TOKENS}), retry later"},
                429,
                headers={"Retry-After": "60"},
            )
        await self.limiter.hit(FAILED_TOKENS, f"failed:{client}")
        return JSONResponse(
            {"error": f"a valid {what} token is required (Authorization: Bearer ...)"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class ApiGuard(_Guard):
    """The public API: bearer tokens (when API_TOKENS is set; wrong ones rate-limited per address;
    in public-chat mode a request with no token at all may use the chat routes, inside its cookie
    session), JSON bodies only (a page on another site cannot POST JSON without CORS allowing it),
    per-token and per-IP rate limits, and the declared body size (counted again as it is read)."""

    def __init__(
        self, app: ASGIApp, tokens: Sequence[str], rate_limit: str, max_body: int, public_chat: bool = False
    ) -> None:
        super().__init__(app)
        self.tokens, self.max_body, self.public_chat = [t.encode() for t in tokens], max_body, public_chat
        self.rate = parse(rate_limit) if rate_limit else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.failed = FailedTokens(self.limiter)

    async def refusal(self, request: Request) -> Response | None:
        token, client = bearer(request), client_of(request)
        visitor = self.public_chat and not token and request.url.path in CHAT_ROUTES
        request.scope[VISITOR] = visitor
        if (self.tokens or self.public_chat) and not visitor:
            valid = any(hmac.compare_digest(token, t) for t in self.tokens)
            if (refused := await self.failed.refusal(client, valid, "API")) is not None:
                return refused
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if request.method == "POST" and media_type != "application/json":
            return JSONResponse({"error": "the request body must be JSON (Content-Type: application/json)"}, 415)
        if int(request.headers.get("content-length") or 0) > self.max_body:
            return JSONResponse({"error": f"request body is larger than {self.max_body} bytes"}, 413)
        if self.rate is not None:
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
        return None


class OperatorGuard(_Guard):
    """The operator API: off unless OPERATOR_TOKEN is set, then that bearer token (wrong ones
    rate-limited per address, as on the API)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        super().__init__(app)
        self.token = token.encode()
        self.failed = FailedTokens(MovingWindowRateLimiter(MemoryStorage()))

    async def refusal(self, request: Request) -> Response | None:
        if not self.token:
            return JSONResponse({"error": "the operator API is off: set OPERATOR_TOKEN to turn it on"}, 403)
        valid = hmac.compare_digest(bearer(request), self.token)
        return await self.failed.refusal(client_of(request), valid, "operator")
