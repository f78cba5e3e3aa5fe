"""The Slack support channel as a desk where agents work: each escalation is a Block Kit notice with
*Take over* and *Resolve* buttons, and its thread is the conversation with the customer. Pure part:
`agent_reply` (an Events API envelope -> the agent's reply in a notice's thread, or None)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack import PLATFORM as SLACK
from bot.delivery import OutputChannel
from bot.desk import BUTTONS, ChatDesk
from core.escalations import EscalationRecord
from core.events import ConversationKey

TAKE, RESOLVE = "tonebot_take", "tonebot_resolve"
ACTION_IDS = {"take": TAKE, "resolve": RESOLVE}
STYLES = {"take": {"style": "primary"}}
SECTION_LIMIT = 3000  # characters in a Block Kit text object


def escape(text: str) -> str:
    """Slack's three control characters, so nobody's text can mention @channel, a user or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def blocks(escalation: EscalationRecord, text: str) -> list[dict[str, Any]]:
    """The notice: its text as plain text (never mrkdwn: it quotes the customer), and the buttons
    that still apply."""
    buttons = [{"type": "button", "action_id": ACTION_IDS[action], "value": str(escalation.id),
                "text": {"type": "plain_text", "text": BUTTONS[action]}, **STYLES.get(action, {})}
               for action in escalation.actions]  # fmt: skip
    section = {"type": "section", "text": {"type": "plain_text", "text": text[:SECTION_LIMIT]}}
    return [section, {"type": "actions", "elements": buttons}] if buttons else [section]


@dataclass(frozen=True)
class AgentReply:
    channel: str
    thread: str  # the notice's ts
    user_id: str
    text: str
    event_id: str  # the message's own ts: one message arrives as `message` and, mentioning the bot, `app_mention`
    unsupported: str = ""  # a kind of message that cannot be relayed (a file): the agent is told


RELAYED_SUBTYPES = ("thread_broadcast",)  # "also send to channel": still a reply in the thread


def agent_reply(body: dict[str, Any], support_channel: str, bot_user_id: str) -> AgentReply | None:
    """A person's message in a thread of the support channel (relayed if the thread is a notice's),
    with mentions of the bot taken out."""
    event = body.get("event") or {}
    if not support_channel or event.get("channel") != support_channel or event.get("type") not in (
        "message", "app_mention"
    ):  # fmt: skip
        return None
    user, thread, subtype = event.get("user"), event.get("thread_ts"), event.get("subtype")
    if not user or user == bot_user_id or event.get("bot_id") or not thread or thread == event.get("ts"):
        return None
    if subtype and subtype not in RELAYED_SUBTYPES and subtype != "file_share":
        return None  # edits, deletions, joins: nothing new for the customer
    text = event.get("text") or ""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}>\s*", "", text).strip()
    unsupported = "files cannot be relayed to the customer; write the text here" if subtype == "file_share" else ""
    return AgentReply(event["channel"], thread, user, text, f"{event['channel']}:{event.get('ts')}", unsupported)


class SlackDesk(ChatDesk):
    """The Desk (bot/desk.py) on Slack's Web API."""

    def __init__(self, client: AsyncWebClient, channel: OutputChannel) -> None:
        super().__init__(channel)  # a plain-text SlackChannel: nobody's words are read as mrkdwn
        self.client = client
        self._names: dict[str, str] = {}

    async def post_notice(self, target: str, escalation: EscalationRecord, text: str) -> str:
        posted = await self.client.chat_postMessage(
            channel=target, text=escape(text)[:SECTION_LIMIT], blocks=blocks(escalation, text)
        )
        return str(posted["ts"])

    def place(self, target: str, thread: str) -> tuple[ConversationKey, str | None]:
        return ConversationKey(SLACK.name, target, thread), None  # the notice's thread

    async def mention(self, target: str, thread: str, agent: str, text: str) -> str:
        """The line escaped like any text, then the one real mention (`<@U…>` notifies the agent)."""
        who = f"<@{agent}>" if re.fullmatch(r"[UW][A-Z0-9]+", agent) else escape(agent)
        posted = await self.client.chat_postMessage(channel=target, thread_ts=thread,
                                                    text=escape(text).replace("{who}", who))  # fmt: skip
        return str(posted["ts"])

    async def show(self, target: str, thread: str, escalation: EscalationRecord, text: str) -> None:
        await self.client.chat_update(
            channel=target, ts=thread, text=escape(text)[:SECTION_LIMIT], blocks=blocks(escalation, text)
        )

    async def delete(self, target: str, ref: str) -> None:
        for ts in ref.split(","):  # a long turn went in several messages
            await self.client.chat_delete(channel=target, ts=ts)

    async def name(self, user_id: str) -> str:
        """A person's display name (users.info, remembered); the id when Slack will not say."""
        if user_id not in self._names:
            try:
                user = (await self.client.users_info(user=user_id))["user"]
                profile = user.get("profile") or {}
                self._names[user_id] = profile.get("display_name") or user.get("real_name") or user_id
            except Exception:
                return user_id
        return self._names[user_id]
