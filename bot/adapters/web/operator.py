"""The operator API (behind OperatorGuard): escalations with their transcripts, acknowledge, resolve.
The operator page (pages.py) is its browser front end."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.web.api import mood_json, read_json
from core.bot import Bot
from core.escalations import EscalationRecord
from core.memory import StoredMessage


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def escalation_json(record: EscalationRecord, transcript: list[StoredMessage]) -> dict[str, Any]:
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


def routes(bot: Bot, max_body: int) -> list[BaseRoute]:
    async def escalations(request: Request) -> Response:
        """
        summary: Escalations with their transcripts (operator token)
        security: [{operator: []}]
        parameters:
          - {name: status, in: query, schema: {type: string, enum: [open, all], default: open}}
        responses:
          200: {description: escalations}
          401: {description: a valid operator token is required}
          403: {description: the operator API is off (OPERATOR_TOKEN unset)}
        """
        cases = await bot.support.cases(open_only=request.query_params.get("status", "open") == "open")
        return JSONResponse({"escalations": [escalation_json(c.escalation, c.transcript) for c in cases]})

    async def act(request: Request) -> Response:
        """
        summary: Acknowledge or resolve an escalation (operator token); resolving hands the chat back to the bot
        security: [{operator: []}]
        parameters:
          - {name: id, in: path, required: true, schema: {type: integer}}
          - {name: action, in: path, required: true, schema: {type: string, enum: [acknowledge, resolve]}}
        responses:
          200: {description: the escalation after the change}
          404: {description: no such escalation}
        """
        escalation_id, action = int(request.path_params["id"]), request.path_params["action"]
        if action not in ("resolve", "acknowledge"):
            raise HTTPException(404, f"unknown action {action!r}: resolve or acknowledge")
        body = await read_json(request, max_body) if await request.body() else {}
        if action == "resolve":
            record = await bot.support.resolve(escalation_id, str(body.get("by") or "operator"))
        else:
            record = await bot.support.acknowledge(escalation_id)
        if record is None:
            raise HTTPException(404, f"no escalation {escalation_id}")
        return JSONResponse(escalation_json(record, []))

    return [
        Route("/v1/escalations", escalations),
        Route("/v1/escalations/{id:int}/{action:str}", act, methods=["POST"]),
    ]
