"""Feedback from the web chat (and any API caller): a thumb on one of the bot's answers in one of
the caller's own conversations (`Caller`: another's answers are not reachable), once per person."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.web.api import Caller, field, read_json
from core.bot import Bot


def routes(bot: Bot, max_body: int) -> list[BaseRoute]:
    async def feedback(request: Request) -> Response:
        """
        summary: "A thumb up or down on one of the bot's answers in a conversation of the caller's (once per person)"
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                required: [conversation_id, answer_id, thumb]
                properties: {conversation_id: {type: string}, answer_id: {type: integer}, user_id: {type: string},
                             thumb: {type: string, enum: [up, down]}}
        responses:
          200: {description: "stored; `changed` is false when it repeated what was stored"}
          422: {description: "not an answer of the bot in this conversation, or no such thumb"}
        """
        caller, body = Caller.of(request), await read_json(request, max_body)
        answer_id, thumb = body.get("answer_id"), body.get("thumb")
        if type(answer_id) is not int or not isinstance(thumb, str):
            raise HTTPException(422, "'answer_id' must be an integer and 'thumb' 'up' or 'down'")
        key, user = caller.conversation(field(body, "conversation_id")), caller.user(field(body, "user_id", False))
        given = await bot.give_feedback(key, answer_id, user, thumb)
        return JSONResponse({"answer_id": answer_id, "thumb": thumb, "changed": given.changed})

    return [Route("/v1/feedback", feedback, methods=["POST"])]
