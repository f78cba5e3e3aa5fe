"""Reading a request body as every route must: the declared length checked before anything is read,
then counted as it arrives (a chunked body cannot sneak past) and timed (a body trickled in byte by
byte does not hold a connection). Used by the API, the operator routes and the platform webhooks."""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.requests import Request

BODY_SECONDS = 10.0
PLATFORM_BODY_BYTES = 1 << 20  # a platform's own payloads (Slack's interactive ones carry whole messages)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or HTTPException 413 (too large, declared or sent) / 408 (too slow)."""
    seconds = BODY_SECONDS
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isascii() or not declared.isdecimal() or int(declared) > limit):
        raise HTTPException(413, f"request body is larger than {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HTTPException(413, f"request body is larger than {limit} bytes")
    except TimeoutError:
        raise HTTPException(408, f"the request body did not arrive within {seconds:g} s") from None
    return bytes(body)
