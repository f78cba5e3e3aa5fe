"""Probes for the orchestrator and the metrics scraper: open to all, no guard."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.bot import Bot


def routes(bot: Bot) -> list[BaseRoute]:
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
        summary: Readiness (the model is loaded and running, and the database answers)
        security: []
        responses:
          200: {description: ready}
          503: {description: "model loading, model not running, or database unreachable"}
        """
        health = await bot.health()
        if health.state == "ready":
            return JSONResponse({"status": "ready"})
        if health.state == "loading":
            return JSONResponse({"status": "model loading"}, 503, headers={"Retry-After": "5"})
        problem, error = (*health.detail.split(": ", 1), "")[:2]
        return JSONResponse({"status": problem, "error": error}, 503)

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus, include_in_schema=False),
    ]
