"""The output channel on Slack's Web API: chat.postMessage / chat.update in the conversation's thread."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.desk import escape
from bot.delivery import OutputChannel, Sent, feedback_data
from core import metrics
from core.events import ConversationKey

log = logging.getLogger(__name__)
FEEDBACK = "tonebot_feedback"  # the action id of the thumbs under answers
SECTION_CHARS = 3000


class CountedRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (waits Retry-After), counted in tonebot_platform_api_retries_total."""

    async def prepare_for_next_attempt_async(self, **kwargs: Any) -> None:
        metrics.PLATFORM_RETRIES.labels("slack").inc()
        await super().prepare_for_next_attempt_async(**kwargs)


class SlackChannel(OutputChannel):
    """Messages in the conversation's thread (a DM has none); Slack renders mrkdwn by itself, and
    `escape` keeps anyone's text (the model's, an agent's) from mentioning @channel or a user."""

    def __init__(self, client: AsyncWebClient, limit: int, interval: float, plain: bool = False) -> None:
        self.client, self.limit, self.interval = client, limit, interval
        self.mrkdwn = None if not plain else False  # plain: what agents see (the desk), never mrkdwn

    async def post(
        self, conversation: ConversationKey, text: str, *, reply_to: str | None = None, markdown: bool = False
    ) -> Sent:
        thread = conversation.thread_id or None
        posted = await self.client.chat_postMessage(
            channel=conversation.chat_id, thread_ts=thread, text=escape(text), mrkdwn=self.mrkdwn
        )
        return Sent(conversation, str(posted["ts"]))

    async def edit(self, sent: Sent, text: str, *, markdown: bool = False) -> Sent:
        await self.client.chat_update(channel=sent.conversation.chat_id, ts=sent.id, text=escape(text))
        return sent

    async def ask_feedback(self, sent: Sent, text: str, answer_id: int, *, markdown: bool = False) -> None:
        """Slack's feedback_buttons under the answer (a section holds 3,000 characters: a longer last
        piece goes without)."""
        if len(escape(text)) > SECTION_CHARS:
            return
        thumbs: dict[str, Any] = {"type": "feedback_buttons", "action_id": FEEDBACK}
        for kind, thumb, label, word in (("positive", "up", "👍", "good"), ("negative", "down", "👎", "bad")):
            text_of = {"type": "plain_text", "text": label}
            value = feedback_data(answer_id, thumb)
            thumbs[f"{kind}_button"] = {"text": text_of, "value": value, "accessibility_label": f"Mark as {word}"}
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}},
            {"type": "context_actions", "elements": [thumbs]},
        ]
        await self.client.chat_update(channel=sent.conversation.chat_id, ts=sent.id, text=escape(text), blocks=blocks)

    async def delete(self, sent: Sent) -> None:
        await self.client.chat_delete(channel=sent.conversation.chat_id, ts=sent.id)
