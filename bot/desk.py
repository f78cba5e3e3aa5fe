"""Where agents work: the `Desk` a platform adapter offers the support side (Slack and Telegram
implement it), and the texts of a notice."""

from __future__ import annotations

from typing import Any, Protocol

from bot.commands import mood_line
from core.escalations import EscalationRecord
from core.handoff import BOT
from core.memory import StoredMessage


class Desk(Protocol):
    """Where agents work on one platform: a notice per escalation with Take over / Resolve buttons,
    its thread (Slack) or topic (Telegram) for the conversation. Refs are the platform's ids."""

    async def notice(self, target: str, escalation: EscalationRecord, text: str) -> str:
        """Post the notice; returns the ref of its thread."""

    async def relay(self, target: str, thread: str, text: str) -> str:
        """Post a text (plain, never markup) in the thread; returns the ref of what was posted."""

    async def show(self, target: str, thread: str, escalation: EscalationRecord, text: str) -> None:
        """Update the notice: its text and the buttons that still apply (taken, resolved)."""

    async def delete(self, target: str, ref: str) -> None: ...


def summary(payload: dict[str, Any]) -> str:
    """The notice as chat text: reason, mood trend, the last turns, and how to answer."""
    key = payload["conversation"]
    trend = " → ".join(f"{s['negative']:.2f}" for s in payload["mood_trend"])
    lines = [
        f"🚨 Escalation #{payload['escalation_id']} ({payload['reason']}) in {key['platform']} {key['chat_id']}"
        + (f" / {key['thread_id']}" if key["thread_id"] else ""),
        f"Negative mood trend: {trend}",
        "",
        *(f"{m['role']} {m['author']}: {m['text'][:300]}" for m in payload["transcript"]),
        "",
        "Take it over and answer in this thread: the customer gets what you write here. "
        f"Resolve hands it back to the bot (or /resolve {payload['escalation_id']}).",
    ]
    return "\n".join(lines)


def status_line(escalation: EscalationRecord) -> str:
    if escalation.resolved_at is not None:
        return f"✅ Resolved by {escalation.resolved_by} at {escalation.resolved_at:%H:%M} UTC — the bot answers again."
    if escalation.taken_by is not None and escalation.taken_at is not None:
        return (
            f"🙋 Taken over by {escalation.taken_by} at {escalation.taken_at:%H:%M} UTC — the bot is silent; "
            "replies here go to the customer."
        )
    return "⏳ Waiting for a person."


def for_agents(turn: StoredMessage) -> str:
    """A turn as the agents see it; whatever the customer wrote (name or text) cannot pass for one
    of tonebot's own status lines: the name is one line, every further line of text is quoted."""
    text = "\n".join(turn.text.splitlines()).replace("\n", "\n│ ")
    if turn.author_id == BOT[0]:
        return f"🤖 tonebot to the customer: {text}"
    name = " ".join((turn.author_name or turn.author_id).split())[:64]
    mood = f"  ({mood_line(turn.mood)})" if turn.mood else ""
    return f"💬 {name}: {text}{mood}"
