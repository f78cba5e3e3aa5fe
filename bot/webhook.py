"""Escalation webhooks for helpdesks with their own inbox (Zendesk, Freshdesk, Chatwoot): the Desk
of a URL. The notice, each relayed customer turn and a /forget as JSON POSTs, signed like Slack's
and Stripe's schemes; the helpdesk answers through the API (POST /v1/escalations/{id}/messages)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from bot.desk import conversation
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


class WebhookDesk:
    """The Desk (bot/desk.py) of a helpdesk's URL: it keeps its own copy, so there is no thread, no
    ref and nothing to update or delete; a /forget is an event it must act on."""

    def __init__(self, http: httpx.AsyncClient, secret: str) -> None:
        self.http, self.secret = http, secret

    async def notice(self, target: str, escalation: EscalationRecord, payload: dict[str, Any]) -> str | None:
        await post(self.http, target, payload, self.secret)
        return None

    async def relay(
        self, target: str, thread: str | None, escalation: EscalationRecord, turn: StoredMessage
    ) -> str | None:
        await post(self.http, target, customer_event(escalation, turn), self.secret)
        return None

    async def say(self, target: str, thread: str, text: str) -> str:
        return ""  # no thread: a helpdesk sees a failed delivery in its own inbox

    async def mention(self, target: str, thread: str, agent: str, text: str) -> str:
        return ""  # no thread (a notice's payload names the assignee)

    async def show(self, target: str, thread: str, escalation: EscalationRecord, text: str) -> None:
        return None

    async def delete(self, target: str, ref: str) -> None:
        return None

    async def forget(self, target: str, escalation: EscalationRecord, user_id: str) -> None:
        event = {"type": "forget", "escalation_id": escalation.id, "user_id": user_id,
                 "conversation": conversation(escalation.key)}  # fmt: skip
        await post(self.http, target, event, self.secret)
