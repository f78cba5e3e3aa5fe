"""What a browser opens: the chat page, the operator page, and the API described as OpenAPI 3
(limits taken from the settings the server runs with)."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from bot.adapters.web.api import MAX_BATCH

INCLUDE = re.compile(r"^[ \t]*(?://|/\*) @include (\S+?)(?: \*/)?[ \t]*\n", re.MULTILINE)


def content_security_policy(html: str) -> str:
    """Only this page's own inline script and style (by hash) run; it talks to this origin only,
    and no other site may frame it."""

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        digests = (base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() for b in blocks)
        return " ".join(f"'sha256-{d}'" for d in digests) or "'none'"

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _page(name: str) -> Route:
    here = files("bot.adapters.web")
    html = here.joinpath(name).read_text(encoding="utf-8")
    # shared and vendored scripts and styles, inlined (their hashes go into the policy):
    # a line "// @include FILE" or "/* @include FILE */"
    html = INCLUDE.sub(lambda m: here.joinpath(m[1]).read_text(encoding="utf-8").rstrip() + "\n", html)
    headers = {"Content-Security-Policy": content_security_policy(html)}

    async def page(_: Request) -> Response:
        return HTMLResponse(html, headers=headers)

    return Route("/" if name == "chat.html" else f"/{name.removesuffix('.html')}", page, include_in_schema=False)


def openapi(max_text_chars: int) -> SchemaGenerator:
    """The document's frame; the endpoints' docstrings (YAML) add the paths."""
    message = {
        "type": "object",
        "required": ["conversation_id", "text"],
        "properties": {
            "conversation_id": {"type": "string"},
            "user_id": {"type": "string"},
            "user_name": {"type": "string"},
            "text": {"type": "string", "maxLength": max_text_chars},
            "event_id": {"type": "string", "description": "idempotency key: a redelivery gets the stored reply"},
        },
    }
    mood = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["negative", "neutral", "positive"]},
            "scores": {"type": "object", "additionalProperties": {"type": "number"}},
        },
    }
    flags = ("escalated", "duplicate", "paused", "failed")
    reply: dict[str, Any] = {
        "type": "object",
        "properties": {
            "conversation_id": {"type": "string"},
            "mood": {"$ref": "#/components/schemas/Mood"},
            "reply": {"type": "string"},
            **{flag: {"type": "boolean"} for flag in flags},
            "offered": {"type": "string", "description": "a person was offered, for this reason: a yes escalates"},
            "answer_id": {"type": "integer", "nullable": True, "description": "the stored answer (for /v1/feedback)"},
        },
    }
    return SchemaGenerator(
        {
            "openapi": "3.0.3",
            "info": {"title": "tonebot HTTP API", "version": "1", "description": f"at most {MAX_BATCH} texts a batch"},
            "security": [{"bearer": []}],
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "description": "one of API_TOKENS"},
                    "operator": {"type": "http", "scheme": "bearer", "description": "OPERATOR_TOKEN"},
                },
                "schemas": {"Message": message, "Mood": mood, "Reply": reply},
                "requestBodies": {
                    "Message": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
                    }
                },
                "responses": {
                    "Unauthorized": {"description": "a valid API token is required"},
                    "RateLimited": {"description": "rate limited (see Retry-After)"},
                    "Unavailable": {"description": "the model is loading or busy: retry after Retry-After seconds"},
                },
            },
        }
    )


def routes(max_text_chars: int) -> list[BaseRoute]:
    schema = openapi(max_text_chars)

    async def document(request: Request) -> Response:
        return JSONResponse(schema.get_schema(request.app.routes))

    pages = [_page(name) for name in ("chat.html", "operator.html", "insights.html")]
    return [*pages, Route("/openapi.json", document, include_in_schema=False)]
