"""Escalation notices to the support team: a signed webhook, a Slack channel, a Telegram chat.

Each notice is a row in the deliveries table before it is sent; an attempt that fails is
recorded and retried with backoff by `run_retries`, so a dead destination never blocks the
user's reply and nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from bot.config import Settings
from core.escalations import EscalationRecord, EscalationStore
from core.memory import Memory
from core.outbox import DeliveryRecord, Outbox

log = logging.getLogger(__name__)
MAX_RETRY_SECONDS = 3600.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + HMAC-SHA256 over "<timestamp>.<body>", like Slack's and Stripe's schemes."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def summary(payload: dict[str, Any]) -> str:
    """The notice as chat text: reason, mood trend, the last turns, and how to resolve."""
    key = payload["conversation"]
    trend = " → ".join(f"{s['negative']:.2f}" for s in payload["mood_trend"])
    lines = [
        f"🚨 Escalation #{payload['escalation_id']} ({payload['reason']}) in {key['platform']} {key['chat_id']}"
        + (f" / {key['thread_id']}" if key["thread_id"] else ""),
        f"Negative mood trend: {trend}",
        "",
        *(f"{m['role']} {m['author']}: {m['text'][:300]}" for m in payload["transcript"]),
        "",
        f"Resolve with /resolve {payload['escalation_id']} (Telegram), `/tonebot resolve {payload['escalation_id']}`"
        " (Slack), or on the operator page.",
    ]
    return "\n".join(lines)


class Notifications:
    """The Notifier the core calls when an escalation opens."""

    def __init__(self, memory: Memory, escalations: EscalationStore, outbox: Outbox, settings: Settings) -> None:
        self.memory, self.escalations, self.outbox, self.settings = memory, escalations, outbox, settings
        notify = settings.notify
        targets = [f"webhook:{url}" for url in notify.webhook_urls]
        if notify.slack_channel:
            targets.append(f"slack:{notify.slack_channel}")
        if notify.telegram_chat_id:
            targets.append(f"telegram:{notify.telegram_chat_id}")
        self.destinations: tuple[str, ...] = tuple(targets)
        self._http = httpx.AsyncClient(timeout=10)
        self._lock = asyncio.Lock()  # one delivery round at a time here; claims keep replicas apart

    async def aclose(self) -> None:
        await self._http.aclose()

    async def escalation_opened(self, escalation: EscalationRecord) -> None:
        await self.deliver_due()

    async def run_retries(self, every: float = 10.0) -> None:
        """Retry failed deliveries until cancelled."""
        while True:
            await asyncio.sleep(every)
            await self.deliver_due()

    async def deliver_due(self) -> None:
        async with self._lock:
            for delivery in await self.outbox.claim_due():
                await self._attempt(delivery)

    async def payload(self, escalation: EscalationRecord) -> dict[str, Any]:
        turns = await self.memory.messages(escalation.key, limit=self.settings.notify.transcript_messages)
        return {
            "escalation_id": escalation.id,
            "conversation": {
                "platform": escalation.key.platform,
                "chat_id": escalation.key.chat_id,
                "thread_id": escalation.key.thread_id,
            },
            "reason": escalation.reason,
            "mood_trend": escalation.scores,
            "opened_at": escalation.opened_at.isoformat(),
            "transcript": [
                {"role": m.role, "author": m.author_id, "text": m.text, "mood": m.mood.label if m.mood else None}
                for m in turns
            ],
        }

    async def _attempt(self, delivery: DeliveryRecord) -> None:
        escalation = await self.escalations.get(delivery.escalation_id)
        if escalation is None:
            return
        try:
            await self._send(delivery.destination, await self.payload(escalation))
            error = None
        except Exception as exc:  # any failure is recorded and retried, never raised into the reply
            error = f"{type(exc).__name__}: {exc}"
            log.warning("escalation #%s to %s failed: %s", escalation.id, delivery.destination, error)
        retry_in = min(self.settings.notify.retry_seconds * 2**delivery.attempts, MAX_RETRY_SECONDS)
        await self.outbox.delivered(delivery.id, error, retry_in)

    async def _send(self, destination: str, payload: dict[str, Any]) -> None:
        kind, _, target = destination.partition(":")
        secrets = self.settings.secrets
        if kind == "webhook":
            body = json.dumps(payload, ensure_ascii=False).encode()
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Tonebot-Timestamp": timestamp}
            if secrets.escalation_webhook_secret:
                headers["X-Tonebot-Signature"] = sign(secrets.escalation_webhook_secret, timestamp, body)
            response = await self._http.post(target, content=body, headers=headers)
            response.raise_for_status()
        elif kind == "slack":
            from slack_sdk.web.async_client import AsyncWebClient

            client = AsyncWebClient(token=secrets.slack_bot_token, base_url=self.settings.slack.api_base_url)
            await client.chat_postMessage(channel=target, text=summary(payload))
        elif kind == "telegram":
            from telegram import Bot as TelegramBot

            async with TelegramBot(secrets.telegram_bot_token, base_url=self.settings.telegram.base_url) as bot:
                await bot.send_message(int(target), summary(payload))
        else:
            raise ValueError(f"unknown destination kind {kind!r}")
