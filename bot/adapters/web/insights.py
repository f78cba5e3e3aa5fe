"""The console's Insights over the operator API (behind OperatorGuard): the outcome report of a
period as JSON (core/reports.py), which the Insights page draws."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.bot import Bot


def routes(bot: Bot) -> list[BaseRoute]:
    async def insights(request: Request) -> Response:
        """
        summary: Outcomes, satisfaction, feedback and hand-off times of a period (README Outcomes)
        security: [{operator: []}]
        parameters:
          - {name: since, in: query, schema: {type: string, default: 7d}, description: "a span (7d, 24h) or a date"}
          - {name: by, in: query, schema: {type: string, enum: [day, platform], default: day}}
        responses:
          200: {description: "the report: totals, a row per day or platform, gaps, sources to review"}
          422: {description: "since is neither a span nor a date"}
        """
        by = request.query_params.get("by", "day")
        if by not in ("day", "platform"):
            raise HTTPException(422, "'by' is day or platform")
        found = await bot.insights.report(request.query_params.get("since", "7d"), by)  # type: ignore[arg-type]
        return JSONResponse(found.as_dict())

    return [Route("/v1/insights", insights)]
