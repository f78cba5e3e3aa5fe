"""Escalation webhooks for helpdesks with their own inbox (Zendesk, Freshdesk, Chatwoot): the notice
and each relayed customer turn as a JSON POST, signed like Slack's and Stripe's schemes."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from core.escalations import EscalationRecord
from core.memory import StoredMessage


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + HMAC-SHA256 over "<timestamp>.<body>"."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def customer_event(escalation: EscalationRecord, turn: StoredMessage) -> dict[str, Any]:
    """A customer's turn in an open escalation; the helpdesk answers with POST /v1/escalations/{id}/messages."""
    mood = {"label": turn.mood.label, "scores": turn.mood.scores} if turn.mood else None
    return {"type": "customer_message", "escalation_id": escalation.id, "author": turn.author_id,
            "text": turn.text, "mood": mood, "at": turn.created_at.isoformat()}  # fmt: skip


async def post(http: httpx.AsyncClient, url: str, payload: dict[str, Any], secret: str) -> None:
    """POST the payload, signed with X-Tonebot-Timestamp / X-Tonebot-Signature when there is a secret."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Tonebot-Timestamp": timestamp}
    if secret:
        headers["X-Tonebot-Signature"] = sign(secret, timestamp, body)
    response = await http.post(url, content=body, headers=headers)
    response.raise_for_status()
