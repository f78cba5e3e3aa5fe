"""Where agents work: the `Desk` each kind of destination offers the support side (the chat desks of
Slack and Telegram, a helpdesk's webhook), and the texts of a notice."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

from bot.commands import mood_line
from bot.delivery import OutputChannel
from bot.destinations import Destination
from core.bot import Bot
from core.escalations import EscalationRecord
from core.events import Agent, AgentMessage, ConversationKey
from core.handoff import BOT, Handoff, HandoffClosed
from core.memory import StoredMessage


class Desk(Protocol):
    """Where agents work, for one kind of destination: a notice per escalation, the customer's turns
    relayed under it, the notice kept up to date, and what /forget asks. Refs are the platform's ids."""

    async def notice(self, target: str, escalation: EscalationRecord, payload: dict[str, Any]) -> str | None:
        """Announce the escalation (`payload`: Notifications.payload); the ref of its thread, if any."""

    async def relay(
        self, target: str, thread: str | None, escalation: EscalationRecord, turn: StoredMessage
    ) -> str | None:
        """A customer's (or the bot's) turn for the agents; the ref of what was posted, if any."""

    async def say(self, target: str, thread: str, text: str) -> str:
        """Post a plain text in the thread (a warning for the agents); its ref."""

    async def mention(self, target: str, thread: str, agent: str, text: str) -> str:
        """Post `text` in the thread with "{who}" as an @-mention of `agent` (an id at this desk: it
        notifies them; "": no one); its ref."""

    async def show(self, target: str, thread: str, escalation: EscalationRecord, text: str) -> None:
        """Update the notice: its text and the buttons that still apply (taken, resolved)."""

    async def delete(self, target: str, ref: str) -> None:
        """/forget: delete what was posted (a ref may list several pieces)."""

    async def forget(self, target: str, escalation: EscalationRecord, user_id: str) -> None:
        """/forget, where nothing was left to delete by ref (a helpdesk that keeps its own copy)."""


class ChatDesk:
    """A desk in a chat (Slack, Telegram): the notice as text with its buttons, one thread per
    escalation, each turn posted there as plain text through the platform's own `OutputChannel`
    (the same splitting, escaping and retries as customers' replies). A subclass posts the notice
    and says where a thread is (`place`)."""

    def __init__(self, channel: OutputChannel) -> None:
        self.channel = channel

    async def post_notice(self, target: str, escalation: EscalationRecord, text: str) -> str:
        raise NotImplementedError

    def place(self, target: str, thread: str) -> tuple[ConversationKey, str | None]:
        """Where a thread's messages go: the conversation, and the message they reply to (if any)."""
        raise NotImplementedError

    async def say(self, target: str, thread: str, text: str) -> str:
        where, reply_to = self.place(target, thread)
        sent = await self.channel.send(where, text, reply_to=reply_to)
        return ",".join(piece.id for piece in sent)  # every piece, so that /forget deletes them all

    async def mention(self, target: str, thread: str, agent: str, text: str) -> str:
        return await self.say(target, thread, text.replace("{who}", agent))  # "@sam" mentions in plain text

    async def notice(self, target: str, escalation: EscalationRecord, payload: dict[str, Any]) -> str | None:
        return await self.post_notice(target, escalation, summary(payload))

    async def relay(
        self, target: str, thread: str | None, escalation: EscalationRecord, turn: StoredMessage
    ) -> str | None:
        if not thread:
            raise RuntimeError("no thread to relay into (the notice was not sent)")
        return await self.say(target, thread, for_agents(turn))

    async def forget(self, target: str, escalation: EscalationRecord, user_id: str) -> None:
        return None  # everything it posted has a ref, erased by `delete`


async def escalation_of(
    bot: Bot, platform: str, target: str, refs: Iterable[str]
) -> tuple[EscalationRecord, str] | None:
    """Which escalation's thread an agent wrote in, at this platform's desk (`target`: its support
    chat): `refs` are the platform's candidate references for the place, most specific first (a
    topic, the message replied to); the store matches them exactly. None: the team's own chatter."""
    destination = str(Destination(platform, target))
    for ref in refs:
        if (record := await bot.escalations.find(destination, ref)) is not None:
            return record, ref
    return None


TAKEN = "You have it: the bot is silent, your replies here go to the customer."
RESOLVED = "Resolved: the bot answers again."


async def act(handoff: Handoff, action: str, escalation: int, agent: Agent) -> str:
    """A desk's button, the same on every desk ("take" or "resolve", BUTTONS): what to tell the agent
    (the notice itself shows the new state)."""
    if action not in BUTTONS:
        return f"unknown action {action!r}"
    try:
        if action == "take":
            await handoff.take(escalation, agent)
            return TAKEN
        await handoff.resolve(escalation, by=f"{agent.via}:{agent.name}")
        return RESOLVED
    except HandoffClosed as exc:
        return str(exc)


async def from_agent(
    handoff: Handoff, desk: Desk, target: str, thread: str, message: AgentMessage, problem: str = "", send: bool = True
) -> None:
    """An agent's message in a desk's thread, the same on every desk: a `problem` (not an agent, an
    edit, an attachment) is said in the thread and, unless `send`, nothing goes to the customer;
    otherwise the text is stored and relayed (once per event id); a closed case is said in the thread.
    What storing raises is raised (the platform redelivers the message)."""
    if problem:
        await not_sent(desk, target, thread, problem)
        if not send:
            return
    try:
        if await handoff.say(message) and handoff.note_text(message.text) is not None:
            with contextlib.suppress(Exception):  # a note: kept for the team, said so where it was written
                await desk.say(target, thread, NOTE_KEPT)
    except HandoffClosed as exc:
        await not_sent(desk, target, thread, str(exc))


NOTE_KEPT = "📝 Note kept for the team (not sent to the customer)."


async def not_sent(desk: Desk, target: str, thread: str, why: str) -> None:
    """Tell the agents, in their thread, that what they wrote did not reach the customer (best effort)."""
    with contextlib.suppress(Exception):
        await desk.say(target, thread, f"⚠️ Not sent to the customer: {why}.")


def conversation(key: ConversationKey) -> dict[str, str]:
    """A conversation as notices and webhooks name it."""
    return {"platform": key.platform, "chat_id": key.chat_id, "thread_id": key.thread_id}


def summary(payload: dict[str, Any]) -> str:
    """The notice as chat text: reason, mood trend, the last turns, and how to answer."""
    key = payload["conversation"]
    trend = " → ".join(f"{s['negative']:.2f}" for s in payload["mood_trend"])
    lines = [
        f"🚨 Escalation #{payload['escalation_id']} ({payload['reason']}) in {key['platform']} {key['chat_id']}"
        + (f" / {key['thread_id']}" if key["thread_id"] else ""),
        f"Negative mood trend: {trend}",
        *([f"👤 Assigned to {who['agent']}"] if (who := payload.get("assignee") or {}).get("agent") else []),
        *payload.get("summary", []),
        "",
        *(f"{m['role']} {m['author']}: {m['text'][:300]}" for m in payload["transcript"]),
        "",
        "Take it over and answer in this thread: the customer gets what you write here. "
        f"Resolve hands it back to the bot (or /resolve {payload['escalation_id']}).",
    ]
    return "\n".join(lines)


BUTTONS = {"take": "Take over", "resolve": "Resolve"}  # an escalation's actions as every desk labels them


def status_line(escalation: EscalationRecord) -> str:
    if escalation.status == "resolved" and escalation.resolved_at is not None:
        return f"✅ Resolved by {escalation.resolved_by} at {escalation.resolved_at:%H:%M} UTC — the bot answers again."
    if escalation.status == "with_human" and escalation.taken_at is not None:
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
