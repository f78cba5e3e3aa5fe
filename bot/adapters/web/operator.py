"""The operator API (behind OperatorGuard): escalations with their transcripts, take over, an agent's
message to the customer (also the helpdesk API: Zendesk, Freshdesk, Chatwoot post here from their
own inbox), acknowledge, resolve. The operator console (operator.html) is its browser front end."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.web.api import MAX_ID, field, mood_json, read_json
from core.assignment import UnknownAgent
from core.bot import Bot
from core.errors import check_text
from core.escalations import EscalationRecord
from core.events import Agent, AgentMessage
from core.handoff import HandoffClosed
from core.memory import StoredMessage
from core.notes import NoteRecord
from core.settings import EscalationSettings
from core.summary import brief, names


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def escalation_json(
    record: EscalationRecord, transcript: list[StoredMessage], notes: Sequence[NoteRecord] = (),
    words: EscalationSettings | None = None,
) -> dict[str, Any]:  # fmt: skip
    key = record.key
    people, lines = names(transcript), brief(transcript, words)
    customer = next(iter(people.values()), "")
    wants = lines[0].removeprefix("Wants: ") if lines else ""
    return {
        "id": record.id,
        "customer": customer,  # readable: a display name, or "Visitor 6b8e (email)" for the web chat
        "title": " — ".join(filter(None, (customer, wants))) or f"#{record.id}",
        "summary": lines,
        "conversation": {"platform": key.platform, "chat_id": key.chat_id, "thread_id": key.thread_id},
        "reason": record.reason,
        "scores": record.scores,
        "opened_at": _iso(record.opened_at),
        "acknowledged_at": _iso(record.acknowledged_at),
        "resolved_at": _iso(record.resolved_at),
        "resolved_by": record.resolved_by,
        "taken_by": record.taken_by,
        "taken_at": _iso(record.taken_at),
        "first_reply_at": _iso(record.first_reply_at),
        "assignee": record.assignee,  # the agent it is assigned to (core/assignment.py), at assignee_desk
        "assignee_desk": record.assignee_desk,
        "status": record.status,
        "actions": list(record.actions),
        "transcript": [turn_json(m, people) for m in transcript],
        "notes": [{"author": n.author, "text": n.text, "at": _iso(n.at)} for n in notes],  # the team's only
    }


def turn_json(m: StoredMessage, people: dict[str, str] | None = None) -> dict[str, Any]:
    author = (people or {}).get(m.author_id) if m.role == "user" else None
    author = author or m.author_name or m.author_id
    return {
        "role": m.role,
        "author": author,
        "text": m.text,
        "mood": mood_json(m.mood),
        "at": _iso(m.created_at),
        "knowledge": m.knowledge,
        "sources": [{"id": s.id, "title": s.title, "url": s.url} for s in m.sources],
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
        cases = await bot.handoff.cases(open_only=request.query_params.get("status", "open") == "open")
        shown = [escalation_json(c.escalation, c.transcript, c.notes, bot.policy) for c in cases]
        return JSONResponse({"escalations": shown})

    async def act(request: Request) -> Response:
        """
        summary: Take over, acknowledge or resolve an escalation (operator token); resolve hands the chat back
        security: [{operator: []}]
        parameters:
          - {name: id, in: path, required: true, schema: {type: integer}}
          - {name: action, in: path, required: true, schema: {type: string, enum: [take, acknowledge, resolve, assign]}}
        requestBody:
          content:
            application/json:
              schema: {type: object, properties: {by: {type: string}, to: {type: string, description: "assign: an
                agent of handoff.assign.agents (GET /v1/agents)"}}}
        responses:
          200: {description: the escalation after the change}
          404: {description: no such escalation}
          409: {description: "the escalation is resolved (or, to assign, taken over)"}
          422: {description: "assign: no such agent"}
        """
        escalation_id, action = int(request.path_params["id"]), request.path_params["action"]
        if action not in ("take", "resolve", "acknowledge", "assign"):
            raise HTTPException(404, f"unknown action {action!r}: take, resolve, acknowledge or assign")
        body = await read_json(request, max_body, empty_ok=True)
        by = agent_name(body)
        record: EscalationRecord | None
        try:
            if action == "assign":
                record = await bot.handoff.assign(escalation_id, field(body, "to"), Agent(by, by, "console"))
            elif action == "take":
                record = await bot.handoff.take(escalation_id, Agent(by, by, "console"))
            elif action == "resolve":
                record = await bot.handoff.resolve(escalation_id, by)
            else:
                record = await bot.handoff.acknowledge(escalation_id)
        except UnknownAgent as exc:
            raise HTTPException(422, str(exc)) from None
        except HandoffClosed as exc:
            raise HTTPException(409 if await bot.handoff.get(escalation_id) else 404, str(exc)) from None
        if record is None:
            raise HTTPException(404, f"no escalation {escalation_id}")
        return JSONResponse(escalation_json(record, []))

    async def message(request: Request) -> Response:
        """
        summary: An agent's message to the escalation's customer, on their platform (operator token; takes it over)
        security: [{operator: []}]
        parameters:
          - {name: id, in: path, required: true, schema: {type: integer}}
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                required: [text]
                properties:
                  text: {type: string}
                  by: {type: string, description: "the agent's name, shown to the customer"}
                  event_id: {type: string, description: "idempotency key: a repeated id relays nothing twice"}
                  note: {type: boolean, description: "a private note for the team, never relayed (as is a text
                    starting with a note prefix: // or note:)"}
        responses:
          200: {description: "relayed, or `noted` (`duplicate` when this event id was handled before)"}
          404: {description: no such escalation}
          409: {description: the escalation is resolved}
          422: {description: no text}
        """
        escalation_id = int(request.path_params["id"])
        body = await read_json(request, max_body)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise HTTPException(422, "'text' must be a non-empty string")
        bot.validate(text, "the message")
        by = agent_name(body)
        event_id = field(body, "event_id", required=False) or uuid.uuid4().hex
        message = AgentMessage(escalation_id, Agent(by, by, "console"), text, event_id)
        noted = body.get("note") is True or bot.handoff.note_text(text) is not None
        try:
            bot.handoff.canned(text)  # "/canned NAME" with no such reply: the caller's mistake
        except HandoffClosed as exc:
            raise HTTPException(422, str(exc)) from None
        try:
            new = await (bot.handoff.note(message) if noted else bot.handoff.say(message))
        except HandoffClosed as exc:
            raise HTTPException(409 if await bot.handoff.get(escalation_id) else 404, str(exc)) from None
        return JSONResponse(
            {"escalation_id": escalation_id, "relayed": not noted, "noted": noted, "duplicate": not new}
        )

    async def canned(_: Request) -> Response:
        """
        summary: The agents' canned replies ("/canned NAME" in a message sends one) (operator token)
        security: [{operator: []}]
        responses:
          200: {description: "canned: [{name, text}]"}
        """
        return JSONResponse({"canned": [{"name": n, "text": t} for n, t in bot.handoff.settings.canned]})

    async def agents(_: Request) -> Response:
        """
        summary: The agents escalations are assigned to, and who is on shift now (operator token)
        security: [{operator: []}]
        responses:
          200: {description: "agents: [{agent, desk, on_shift}]"}
        """
        on = bot.handoff.assignments.on_shift()
        return JSONResponse({"agents": [{"agent": a.agent, "desk": a.desk, "on_shift": a in on}
                                        for a in bot.handoff.assignments.pool]})  # fmt: skip

    return [
        Route("/v1/agents", agents),
        Route("/v1/canned", canned),
        Route("/v1/escalations", escalations),
        Route("/v1/escalations/{id:int}/messages", message, methods=["POST"]),
        Route("/v1/escalations/{id:int}/{action:str}", act, methods=["POST"]),
    ]


def agent_name(body: dict[str, Any]) -> str:
    by = body.get("by")
    return check_text(by.strip()[:MAX_ID], "'by'") if isinstance(by, str) and by.strip() else "operator"
