"""The knowledge base over the operator API (behind OperatorGuard): what a helpdesk syncs (articles,
curated entries), what the console's Knowledge page shows (the documents, search as the bot would,
the proposals from hand-offs to approve or edit, the questions it could not answer)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.adapters.web.api import field, read_json
from core.bot import Bot
from core.errors import check_text
from core.knowledge import Knowledge, SourceError, public_id
from core.knowledge.text import article, qa


def _text(body: dict[str, Any], name: str, limit: int = 20_000) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise HTTPException(422, f"'{name}' must be a non-empty string of at most {limit} characters")
    return check_text(value.strip(), f"'{name}'")


def routes(bot: Bot, max_body: int) -> list[BaseRoute]:
    def kb() -> Knowledge:
        if bot.knowledge is None:
            raise HTTPException(404, "no knowledge base here")
        return bot.knowledge

    async def documents(request: Request) -> Response:
        """
        summary: The knowledge base's documents (operator token); `status=proposed` for proposals
        security: [{operator: []}]
        parameters: [{name: status, in: query, schema: {type: string, enum: [approved, proposed]}}]
        responses: {200: {description: "documents: [{id, kind, title, status, source, question, answer}]"}}
        """
        status = request.query_params.get("status")
        found = await kb().store.documents(status if status in ("approved", "proposed") else None)
        return JSONResponse({"documents": [
            {"id": d.id, "cite": public_id(d.source, d.kind), "kind": d.kind, "title": d.title, "url": d.url,
             "status": d.status, "passages": d.passages, "question": d.question, "answer": d.answer}
            for d in found]})  # fmt: skip

    async def search(request: Request) -> Response:
        """
        summary: What retrieval finds for a question, and what the bot would answer (operator token)
        security: [{operator: []}]
        parameters: [{name: q, in: query, required: true, schema: {type: string}}]
        responses: {200: {description: "answer {text, kind, sources} and hits [{heading, text, score, cosine}]"}}
        """
        question = check_text(request.query_params.get("q", "")[:2000], "'q'")
        if not question.strip():
            raise HTTPException(422, "'q' must be a question")
        answer = await kb().answer(question)
        return JSONResponse({
            "answer": {"text": answer.text, "kind": answer.kind, "sources": [s.__dict__ for s in answer.sources]},
            "hits": [{"heading": h.passage.heading, "text": h.passage.text, "score": round(h.score, 4),
                      "cosine": round(h.dense, 3)} for h in answer.hits]})  # fmt: skip

    async def gaps(request: Request) -> Response:
        """
        summary: The questions the knowledge base had no answer for, most asked first (operator token)
        security: [{operator: []}]
        responses: {200: {description: "gaps: [{question, times}]"}}
        """
        return JSONResponse({"gaps": [{"question": q, "times": n} for q, n in await bot.memory.unanswered()]})

    async def put_entry(request: Request) -> Response:
        """
        summary: Add or edit a curated Q&A entry, answered word for word (operator token)
        security: [{operator: []}]
        requestBody: {content: {application/json: {schema: {type: object, required: [id, question, answer],
          properties: {id: {type: string}, question: {type: string}, answer: {type: string}, url: {type: string}}}}}}
        responses: {200: {description: "added | updated | unchanged"}}
        """
        body = await read_json(request, max_body)
        document = qa(_text(body, "question", 1000), _text(body, "answer"), f"operator#{field(body, 'id')}",
                      str(body.get("url") or "")[:1000])  # fmt: skip
        return JSONResponse({"outcome": await kb().put(document)})

    async def put_article(request: Request) -> Response:
        """
        summary: Add or update a help-center article (Markdown), for a helpdesk that syncs its articles (operator token)
        security: [{operator: []}]
        requestBody: {content: {application/json: {schema: {type: object, required: [id, title, text],
          properties: {id: {type: string}, title: {type: string}, text: {type: string}, url: {type: string}}}}}}
        responses: {200: {description: "added | updated | unchanged"}, 422: {description: "no text"}}
        """
        body = await read_json(request, max_body)
        try:
            document = article(_text(body, "text"), f"api#{field(body, 'id')}", _text(body, "title", 500),
                               str(body.get("url") or "")[:1000])  # fmt: skip
        except SourceError as exc:
            raise HTTPException(422, str(exc)) from None
        return JSONResponse({"outcome": await kb().put(document)})

    async def act(request: Request) -> Response:
        """
        summary: Approve a proposed entry, or remove a document (operator token)
        security: [{operator: []}]
        parameters:
          - {name: id, in: path, required: true, schema: {type: integer}}
          - {name: action, in: path, required: true, schema: {type: string, enum: [approve, remove]}}
        responses: {200: {description: done}, 404: {description: no such document}}
        """
        document_id, action = int(request.path_params["id"]), request.path_params["action"]
        store = kb().store
        if action == "approve":
            done = await store.set_status(document_id, "approved")
        elif action == "remove":
            done = await store.remove(document_id)
        else:
            raise HTTPException(404, f"unknown action {action!r}: approve or remove")
        if not done:
            raise HTTPException(404, f"no document {document_id}")
        return JSONResponse({"id": document_id, "done": action})

    return [
        Route("/v1/knowledge", documents),
        Route("/v1/knowledge/search", search),
        Route("/v1/knowledge/gaps", gaps),
        Route("/v1/knowledge/entries", put_entry, methods=["POST"]),
        Route("/v1/knowledge/articles", put_article, methods=["POST"]),
        Route("/v1/knowledge/{id:int}/{action:str}", act, methods=["POST"]),
    ]
